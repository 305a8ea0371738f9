"""Kafka behaviour checks with real clients (driven by node/tests/kafka_behaviour.rs).

Usage: behaviour.py --bootstrap HOST:PORT MODE [ARGS...]

Modes:
  cluster-id       print the cluster id and topics confluent-kafka's list_topics() sees
  broker-configs OWN OTHER
                   describe broker OWN with confluent-kafka and kafka-python; OTHER must fail
  whole-set-alter TOPIC
                   kafka-python AlterConfigs (API 33) on TOPIC, validate_only first; prints the result
  compacted-keys TOPIC
                   confluent-kafka: a record without a key on compacted TOPIC is refused (INVALID_RECORD)
  admin-success    create, alter, describe and delete a topic with kafka-python and confluent-kafka;
                   every call must succeed (a non-null error message must not be read as failure)
"""

import argparse
import sys

from common import check, deadline, expired, fail

TIMEOUT_S = 15


def cluster_id(bootstrap, _args):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    print(f"confluent cluster id {md.cluster_id}")
    for name in sorted(md.topics):
        print(f"topic {name}")


def brokers(bootstrap, _args):
    """The brokers each client sees: id, and (kafka-python) rack."""
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    for b in sorted(md.brokers.values(), key=lambda b: b.id):
        print(f"confluent broker {b.id}")
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        for b in a.describe_cluster()["brokers"]:
            # The key is the protocol field's name, which differs across kafka-python versions.
            node = next(b[k] for k in ("node_id", "broker_id", "nodeId") if k in b)
            print(f"kafka-python broker {node} rack {b['rack']}")
    finally:
        a.close()


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


def broker_configs(bootstrap, args):
    """Prints `confluent NAME=VALUE source=N read_only=B` and `kafka-python NAME=VALUE source=N`
    for broker args[0]; checks that broker args[1] (not this node) is an error."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    own, other = args
    c = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.BROKER, own)
    entries = c.describe_configs([res])[res].result(timeout=TIMEOUT_S)
    for name, e in sorted(entries.items()):
        print(f"confluent {name}={e.value} source={int(e.source)} read_only={e.is_read_only}")
    bad = ConfigResource(ResourceType.BROKER, other)
    try:
        # No broker has that id: librdkafka gives up after the request timeout.
        c.describe_configs([bad], request_timeout=3)[bad].result(timeout=TIMEOUT_S)
        fail(f"broker {other} was described")
    except Exception as e:  # the node answers this broker name with an error
        print(f"confluent broker {other} refused: {e!r}")

    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType

    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        got = a.describe_configs([KConfigResource(ConfigResourceType.BROKER, own)], config_filter="all")
        for name, e in sorted(got["broker"][own].items()):
            print(f"kafka-python {name}={e['value']} source={e['config_source']}")
    finally:
        a.close()


def whole_set_alter(bootstrap, args):
    """kafka-python's AlterConfigs (API 33, incremental=False) on topic args[0]: validate_only
    changes nothing, then retention.ms is set; prints what describe reads back."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    (topic,) = args
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)

    def described():
        got = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        return {k: v["value"] for k, v in got["topic"][topic].items()}

    try:
        res = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})
        a.alter_configs([res], validate_only=True, incremental=False)
        check(described()["retention.ms"] == "604800000", "validate_only changed retention.ms")
        a.alter_configs([res], incremental=False)
        now = described()
        print(f"kafka-python retention.ms={now['retention.ms']}")
        print(f"kafka-python segment.bytes={now['segment.bytes']}")
    finally:
        a.close()


def compacted_keys(bootstrap, args):
    """confluent-kafka producer on compacted topic args[0]: a record without a key fails on
    delivery with INVALID_RECORD; keyed records (one a tombstone) are delivered; a consumer reads
    back only the keyed ones."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    (topic,) = args
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0})
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.key()))

    def send(key, value):
        reports.clear()
        p.produce(topic, key=key, value=value, partition=0, on_delivery=on_delivery)
        check(p.flush(TIMEOUT_S) == 0, "delivery report not received")
        return reports[0][0]

    err = send(None, b"no key")
    check(err is not None and err.code() == KafkaError.INVALID_RECORD, f"keyless: expected INVALID_RECORD, got {err}")
    print(f"keyless refused: {err.name()} {err.str()}")
    for key, value in [(b"k1", b"v1"), (b"k2", None)]:
        err = send(key, value)
        check(err is None, f"keyed record {key}: {err}")
    err = send(None, b"again")
    check(err is not None and err.code() == KafkaError.INVALID_RECORD, f"second keyless: {err}")
    print("keyed delivered")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "behaviour-compacted", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    end = deadline()
    while len(got) < 2 and not expired(end):
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.key(), m.value()))
    c.close()
    check(got == [(0, b"k1", b"v1"), (1, b"k2", None)], f"log holds {got}")
    print(f"log holds {got}")


MODES = {
    "compacted-keys": compacted_keys,
    "whole-set-alter": whole_set_alter,
    "broker-configs": broker_configs,
    "cluster-id": cluster_id,
    "admin-success": admin_success,
    "brokers": brokers,
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
