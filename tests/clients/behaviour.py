"""Kafka behaviour checks with real clients (driven by node/tests/kafka_behaviour.rs).

Usage: behaviour.py --bootstrap HOST:PORT MODE [ARGS...]

Modes:
  cluster-id       print the cluster id and topics confluent-kafka's list_topics() sees
"""

import argparse
import sys

from common import check, fail

TIMEOUT_S = 15


def cluster_id(bootstrap, _args):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    print(f"confluent cluster id {md.cluster_id}")
    for name in sorted(md.topics):
        print(f"topic {name}")


MODES = {
    "cluster-id": cluster_id,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    try:
        MODES[a.mode](a.bootstrap, a.args)
    except Exception as e:  # any client error is a failure of the check
        fail(f"{a.mode}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
