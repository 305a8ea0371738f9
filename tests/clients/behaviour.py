"""Kafka behaviour checks with real clients (driven by node/tests/kafka_behaviour.rs).

Usage: behaviour.py --bootstrap HOST:PORT MODE [ARGS...]

Modes:
  cluster-id       print the cluster id and topics confluent-kafka's list_topics() sees
  admin-success    create, alter, describe and delete a topic with kafka-python and confluent-kafka;
                   every call must succeed (a non-null error message must not be read as failure)
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


def admin_success(bootstrap, _args):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        a.create_topics([NewTopic("kp-admin", 2, 1)])
        check("kp-admin" in a.list_topics(), "kafka-python: topic not listed")
        a.delete_topics(["kp-admin"])
    finally:
        a.close()
    print("kafka-python ok")

    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic

    c = AdminClient({"bootstrap.servers": bootstrap})
    for name, f in c.create_topics([CNewTopic("cf-admin", 2, 1)]).items():
        f.result(timeout=TIMEOUT_S)
    for name, f in c.delete_topics(["cf-admin"]).items():
        f.result(timeout=TIMEOUT_S)
    print("confluent ok")


MODES = {
    "cluster-id": cluster_id,
    "admin-success": admin_success,
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
