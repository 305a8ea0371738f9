"""TLS, SASL and ACL checks with real clients (driven by node/tests/security.rs).

Usage: security_check.py --bootstrap SASL_SSL_HOST:PORT --certs DIR [listener options] MODE

The node is started with the four listeners, `--authorizer acl --super-users User:admin`, the
SASL mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and a PLAIN users file holding
`admin:admin-secret`. `--bootstrap` is its SASL_SSL listener; DIR holds what
make_test_certs.sh wrote (ca.pem, client.pem/.key, rogue.pem/.key).

Modes:
  deny-matrix    as super user admin (PLAIN) create SCRAM-SHA-512 user bob and SCRAM-SHA-256 user
                 carol; for each API a client exposes: bob without the ACL it needs gets Kafka's
                 exact refusal and nothing changes (checked as admin); admin adds that ACL; bob
                 then succeeds. Needs --plaintext (PLAINTEXT is User:ANONYMOUS) and
                 --sasl-plaintext (requests sent by hand where a client cannot be used).
  auth-failures  wrong passwords (PLAIN, SCRAM), an absent and a deleted user, an unknown
                 mechanism, requests before authentication, malformed SASL tokens, garbage on
                 the TLS port, and a bounded brute force while an authenticated producer keeps
                 producing (its p99 latency must stay bounded). Needs --sasl-plaintext, --ssl.
  tls-clients    round trips: kafka-python over SSL, kafka-python with a client certificate on an
                 mTLS listener (principal User:CN=alice,O=test), confluent-kafka with SCRAM-SHA-512,
                 SCRAM-SHA-256 and PLAIN over SASL_SSL, kcat over SASL_SSL. Needs --ssl,
                 --sasl-plaintext, --mtls and --mtls-admin (a second node: SSL with
                 --ssl-client-auth required, plus SASL_PLAINTEXT for admin).

Every check prints one line; the last line is `OK <mode>`, or `FAIL: <reason>` (exit 1).
"""

import argparse
import collections
import os
import random
import socket
import ssl
import struct
import subprocess
import threading
import time

from common import check, deadline, expired, fail

TIMEOUT_S = 15
ADMIN = ("admin", "admin-secret")
BOB = ("bob", "bob-secret")
CAROL = ("carol", "carol-secret")
CLUSTER = "kafka-cluster"

# Kafka error codes.
NONE = 0
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
ELECTION_NOT_NEEDED = 84


# --- client configurations ---------------------------------------------------------------------


class Ctx:
    """The command line, and the confluent-kafka / kafka-python configurations it implies."""

    def __init__(self, args):
        self.a = args
        self.ca = os.path.join(args.certs, "ca.pem")

    def conf(self, user, mech="SCRAM-SHA-512", bootstrap=None, protocol="SASL_SSL", **extra):
        """confluent-kafka configuration for `user` ((name, password) or None)."""
        c = {
            "bootstrap.servers": bootstrap or self.a.bootstrap,
            "security.protocol": protocol,
            "client.id": f"security-check-{user[0] if user else 'anonymous'}",
            "socket.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 1000,
        }
        if protocol.startswith("SASL"):
            c.update({"sasl.mechanisms": mech, "sasl.username": user[0], "sasl.password": user[1]})
        if protocol.endswith("SSL"):
            c["ssl.ca.location"] = self.ca
        c.update(extra)
        return c

    def admin_conf(self):
        return self.conf(ADMIN, mech="PLAIN")

    def kp(self, user, mech="SCRAM-SHA-512", **extra):
        """kafka-python configuration for `user` over SASL_SSL."""
        c = dict(
            bootstrap_servers=self.a.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=mech,
            sasl_plain_username=user[0],
            sasl_plain_password=user[1],
            ssl_cafile=self.ca,
            request_timeout_ms=10000,
        )
        c.update(extra)
        return c


# The last few admin clients made: a client dropped while its call is in flight (as in
# `admin_client(conf).list_offsets(...)[tp].result()`) may never complete that call's future.
_RECENT_CLIENTS = collections.deque(maxlen=4)


def admin_client(conf):
    from confluent_kafka.admin import AdminClient

    a = AdminClient(conf)
    _RECENT_CLIENTS.append(a)
    return a


def code_of(exc):
    """The Kafka error code a confluent-kafka or kafka-python exception carries (None if none)."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    if isinstance(exc, KafkaError):
        return exc.code()
    return getattr(exc, "errno", None)


def outcome(fn):
    """Runs `fn`: (0, its result) or (the error code it raised, the exception)."""
    try:
        return NONE, fn()
    except Exception as e:  # noqa: BLE001
        c = code_of(e)
        if c is None:
            raise
        return c, e


def refused(what, fn, code):
    """`fn` must fail with Kafka error `code`."""
    got, detail = outcome(fn)
    check(got == code, f"{what}: expected error {code}, got {got} ({detail!r})")
    print(f"{what}: refused with {code}", flush=True)


def eventually(what, fn, limit=TIMEOUT_S):
    """Retries `fn` (fresh clients each time, as ACL changes may take a moment to apply) until
    it returns without raising, at most `limit` seconds. Returns its result."""
    at = deadline(limit)
    last = None
    while not expired(at):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            last = e
            time.sleep(0.3)
    fail(f"{what}: still failing after {limit}s: {last!r}")


def result(fut):
    return fut.result(timeout=TIMEOUT_S)


def all_results(futs):
    return {k: f.result(timeout=TIMEOUT_S) for k, f in futs.items()}


# --- admin-side helpers --------------------------------------------------------------------------


def upsert_scram(admin, user, password, mech, iterations):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    m = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[mech]
    up = UserScramCredentialUpsertion(user, ScramCredentialInfo(m, iterations), password.encode())
    all_results(admin.alter_user_scram_credentials([up]))


def make_users(ctx):
    """bob (SCRAM-SHA-512) and carol (SCRAM-SHA-256), created by admin; waits until both can
    authenticate."""
    admin = admin_client(ctx.admin_conf())
    upsert_scram(admin, BOB[0], BOB[1], "SCRAM-SHA-512", 8192)
    upsert_scram(admin, CAROL[0], CAROL[1], "SCRAM-SHA-256", 4096)
    eventually("bob authenticates", lambda: admin_client(ctx.conf(BOB)).list_topics(timeout=5))
    eventually(
        "carol authenticates",
        lambda: admin_client(ctx.conf(CAROL, mech="SCRAM-SHA-256")).list_topics(timeout=5),
    )
    print("admin created SCRAM-SHA-512 user bob and SCRAM-SHA-256 user carol", flush=True)
    return admin


def acl(restype, name, op, principal="User:bob", pattern=None, deny=False):
    from confluent_kafka.admin import AclBinding, AclPermissionType, ResourcePatternType

    return AclBinding(
        restype, name, pattern or ResourcePatternType.LITERAL, principal, "*", op,
        AclPermissionType.DENY if deny else AclPermissionType.ALLOW,
    )


def grant(admin, *bindings):
    all_results(admin.create_acls(list(bindings), request_timeout=10))
    for b in bindings:
        print(f"  admin added {b.permission_type.name} {b.principal} {b.operation.name} "
              f"{b.restype.name}:{b.name} ({b.resource_pattern_type.name})", flush=True)


def create_topic(admin, name, partitions=1, configs=None):
    from confluent_kafka.admin import NewTopic

    result(admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})])[name])


def topics_of(admin):
    return set(admin.list_topics(timeout=TIMEOUT_S).topics)


def partitions_of(admin, topic):
    return len(admin.list_topics(topic=topic, timeout=TIMEOUT_S).topics[topic].partitions)


def watermarks(ctx, topic, partition=0):
    """(low, high) of a partition, as admin."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(ctx.conf(ADMIN, mech="PLAIN", **{"group.id": "security-check-peek"}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
    finally:
        c.close()


def topic_config(admin, topic, name):
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.TOPIC, topic)
    return result(admin.describe_configs([res])[res])[name].value


def produce(conf, topic, values, idempotent=False):
    """Produces `values` to partition 0; returns (delivery error codes, error_cb errors)."""
    from confluent_kafka import KafkaException, Producer

    errors = []
    c = dict({"message.timeout.ms": 10000}, **conf)
    c.update({"linger.ms": 0, "error_cb": errors.append})
    if idempotent:
        c["enable.idempotence"] = True
    p = Producer(c)
    reports = []
    for v in values:
        p.produce(topic, value=v, partition=0,
                  on_delivery=lambda err, _m: reports.append(err.code() if err else NONE))
    try:
        left = p.flush(TIMEOUT_S)
    except KafkaException as e:
        # A fatal error (an idempotent producer's refused InitProducerId) is raised here.
        errors.append(e.args[0])
        return reports, errors
    check(left == 0, f"produce to {topic}: {left} delivery reports missing (errors: {errors})")
    return reports, errors


def produce_logged(conf, topic, values, idempotent=False):
    """As `produce`, with librdkafka's log lines: (delivery codes, client errors, log lines)."""
    import logging

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger(f"security-check-{len(values)}-{time.monotonic()}")
    log.setLevel(logging.DEBUG)
    log.addHandler(Keep())
    log.propagate = False
    reports, errors = produce(dict(conf, logger=log, **{"message.timeout.ms": 6000}), topic,
                              values, idempotent)
    return reports, errors, lines


def produced_ok(conf, topic, values, idempotent=False):
    reports, errors = produce(conf, topic, values, idempotent)
    if any(reports):
        raise RuntimeError(f"delivery errors {reports} (client errors {errors})")


def consume(conf, topic, group, want, subscribe=False, stop_codes=(), limit=TIMEOUT_S,
            commit=False):
    """Reads partition 0 of `topic` from the start (assigned, or subscribed in `group`) until
    `want` records or an error in `stop_codes`; returns (values, error codes seen)."""
    from confluent_kafka import Consumer, TopicPartition

    import logging

    logged, count = collections.deque(maxlen=3), [0]

    class Keep(logging.Handler):
        def emit(self, record):
            count[0] += 1
            logged.append(record.getMessage()[:300])

    log = logging.getLogger(f"security-check-consumer-{time.monotonic()}")
    log.addHandler(Keep())
    log.propagate = False
    c = Consumer(dict(conf, logger=log, **{
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
    }))
    values, codes = [], []
    try:
        if subscribe:
            c.subscribe([topic])
        else:
            c.assign([TopicPartition(topic, 0, 0)])
        at = deadline(limit)
        while len(values) < want and not expired(at):
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                codes.append(m.error().code())
                if m.error().code() in stop_codes:
                    break
                continue
            values.append(m.value())
        if commit and values:
            c.commit(asynchronous=False)
    finally:
        c.close()
    if len(values) < want and count[0]:
        # What librdkafka logged (kept out of the output otherwise: it can be thousands of lines).
        codes.append(f"librdkafka logged {count[0]} lines, the last: {list(logged)}")
    return values, codes


def commit_as(ctx, user, mech, group, topic, offset):
    """Commits `offset` for partition 0 of `topic` in `group` (no membership), as `user`."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(ctx.conf(user, mech=mech, **{"group.id": group, "enable.auto.commit": False}))
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def committed(admin, group, topic):
    """The offset `group` committed for partition 0 of `topic` (None if none), as admin."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    got = result(admin.list_consumer_group_offsets([req])[group])
    off = got.topic_partitions[0].offset
    return off if off >= 0 else None


def group_ids(admin):
    got = result(admin.list_consumer_groups(request_timeout=10))
    return {g.group_id for g in got.valid}


# --- deny-matrix ---------------------------------------------------------------------------------


def deny_matrix(ctx):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import (
        AclBindingFilter, AclOperation, AclPermissionType, AlterConfigOpType, ConfigEntry,
        ConfigResource, NewPartitions, NewTopic, OffsetSpec, ResourcePatternType, ResourceType,
    )
    from confluent_kafka import ElectionType

    T, G, B = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
    check(ctx.a.plaintext and ctx.a.sasl_plaintext, "deny-matrix needs --plaintext and --sasl-plaintext")
    admin = make_users(ctx)
    bob = ctx.conf(BOB)
    carol = ctx.conf(CAROL, mech="SCRAM-SHA-256")

    def bob_admin():
        return admin_client(bob)

    for t, n in [("sec-meta", 1), ("sec-produce", 1), ("sec-fetch", 1), ("sec-lo", 1),
                 ("sec-grp-t", 1), ("sec-del", 1), ("sec-parts", 1), ("sec-cfg", 1),
                 ("sec-icfg", 1), ("sec-dr", 1), ("sec-deny", 1), ("sec-idem", 1),
                 ("sec-g-t", 1)]:
        create_topic(admin, t, n)
    for t, n in [("sec-fetch", 1), ("sec-lo", 1), ("sec-grp-t", 1), ("sec-dr", 3),
                 ("sec-deny", 1), ("sec-g-t", 1)]:
        produced_ok(ctx.admin_conf(), t, [b"admin-%d" % i for i in range(n)])
    print("admin created the topics and wrote their records", flush=True)

    # PLAINTEXT is User:ANONYMOUS, which has no ACL.
    anon = ctx.conf(None, bootstrap=ctx.a.plaintext, protocol="PLAINTEXT")
    seen = topics_of(admin_client(anon))
    check(not any(t.startswith("sec-") for t in seen), f"ANONYMOUS sees topics {sorted(seen)}")
    reports, errors = produce(anon, "sec-produce", [b"anonymous"])
    check(reports == [TOPIC_AUTHORIZATION_FAILED], f"ANONYMOUS produce: {reports} {errors}")
    check(watermarks(ctx, "sec-produce")[1] == 0, "ANONYMOUS's record was written")
    print("plaintext (User:ANONYMOUS): no topic listed, produce refused with 29, nothing written")

    # Metadata: topics bob may not DESCRIBE are hidden; named, they are an authorization error.
    md = bob_admin().list_topics(timeout=TIMEOUT_S)
    check("sec-meta" not in md.topics, "bob lists sec-meta without DESCRIBE")
    md = bob_admin().list_topics(topic="sec-meta", timeout=TIMEOUT_S)
    err = md.topics["sec-meta"].error
    check(err is not None and err.code() == TOPIC_AUTHORIZATION_FAILED,
          f"metadata for sec-meta named explicitly: {err!r}")
    print("metadata: sec-meta hidden from bob, named explicitly refused with 29")
    grant(admin, acl(T, "sec-meta", AclOperation.DESCRIBE))
    eventually("bob lists sec-meta", lambda: check_in("sec-meta", topics_of(bob_admin())))
    print("metadata: bob lists sec-meta after DESCRIBE")

    # Metadata auto-create: bob's produce to a missing topic creates it only with CREATE.
    reports, errors = produce(bob, "sec-auto", [b"bob"])
    check(reports == [TOPIC_AUTHORIZATION_FAILED], f"bob produce to missing sec-auto: {reports}")
    check("sec-auto" not in topics_of(admin), "sec-auto was auto-created for bob without CREATE")
    print("metadata auto-create: refused with 29 without CREATE, topic not created")
    grant(admin, acl(T, "sec-auto", AclOperation.CREATE), acl(T, "sec-auto", AclOperation.WRITE))
    eventually("bob auto-creates sec-auto", lambda: produced_ok(bob, "sec-auto", [b"bob"]))
    check("sec-auto" in topics_of(admin), "sec-auto not created")
    print("metadata auto-create: bob's produce created sec-auto after CREATE+WRITE")

    # Produce: WRITE on the topic (DESCRIBE granted first, so Produce itself refuses).
    grant(admin, acl(T, "sec-produce", AclOperation.DESCRIBE))
    reports, _ = eventually("bob's produce answered", lambda: ok_codes(
        produce(bob, "sec-produce", [b"bob-1"]), {TOPIC_AUTHORIZATION_FAILED}))
    check(watermarks(ctx, "sec-produce")[1] == 0, "bob's refused record was written")
    print("produce: refused with 29 without WRITE, nothing written")
    grant(admin, acl(T, "sec-produce", AclOperation.WRITE))
    eventually("bob produces", lambda: produced_ok(bob, "sec-produce", [b"bob-2"]))
    check(watermarks(ctx, "sec-produce")[1] == 1, "bob's record not written once")
    print("produce: bob writes after WRITE")

    # Fetch: READ on the topic.
    grant(admin, acl(T, "sec-fetch", AclOperation.DESCRIBE), acl(G, "sec-fetch-g", AclOperation.READ))
    values, codes = consume(bob, "sec-fetch", "sec-fetch-g", 1,
                            stop_codes={TOPIC_AUTHORIZATION_FAILED})
    check(not values and TOPIC_AUTHORIZATION_FAILED in codes,
          f"fetch without READ: values {values}, errors {codes}")
    print("fetch: refused with 29 without READ, no record returned")
    grant(admin, acl(T, "sec-fetch", AclOperation.READ))
    eventually("bob fetches", lambda: expect_values(
        consume(bob, "sec-fetch", "sec-fetch-g", 1), [b"admin-0"]))
    print("fetch: bob reads the record after READ")

    # ListOffsets: DESCRIBE on the topic. librdkafka looks the leader up in Metadata first and
    # reports a hidden topic as _NOENT ("No leaders found"), never sending ListOffsets: ask the
    # node directly (bob over SASL_PLAINTEXT with PLAIN, which takes SCRAM users).
    def raw_latest():
        r = Raw(ctx.a.sasl_plaintext)
        try:
            r.login_plain(*BOB)
            return r.list_offsets("sec-lo", 0, -1)
        finally:
            r.close()

    code, offset = raw_latest()
    check(code == TOPIC_AUTHORIZATION_FAILED, f"ListOffsets without DESCRIBE: error {code}")
    check(offset == -1, f"ListOffsets without DESCRIBE: offset {offset}")
    print("list offsets: refused with 29 without DESCRIBE, no offset given")
    grant(admin, acl(T, "sec-lo", AclOperation.DESCRIBE))
    eventually("bob lists offsets", lambda: check_equal(raw_latest(), (NONE, 1)))

    def latest():
        tp = TopicPartition("sec-lo", 0)
        return result(bob_admin().list_offsets({tp: OffsetSpec.latest()}, request_timeout=10)[tp]).offset

    got = eventually("bob lists offsets with confluent-kafka", latest)
    check(got == 1, f"latest offset of sec-lo: {got}")
    print("list offsets: bob reads the end offset (1) after DESCRIBE")

    # Consumer group: FindCoordinator/JoinGroup/SyncGroup/Heartbeat/OffsetCommit/LeaveGroup.
    grant(admin, acl(T, "sec-grp-t", AclOperation.READ))
    values, codes = consume(bob, "sec-grp-t", "sec-grp", 1, subscribe=True,
                            stop_codes={GROUP_AUTHORIZATION_FAILED})
    check(not values and GROUP_AUTHORIZATION_FAILED in codes,
          f"group consume without READ on the group: values {values}, errors {codes}")
    check(committed(admin, "sec-grp", "sec-grp-t") is None, "sec-grp has a committed offset")
    print("group join: refused with 30 without READ on the group, nothing committed")
    grant(admin, acl(G, "sec-grp", AclOperation.READ))
    eventually("bob consumes in sec-grp", lambda: expect_values(
        consume(bob, "sec-grp-t", "sec-grp", 1, subscribe=True, commit=True), [b"admin-0"]))
    got = committed(admin, "sec-grp", "sec-grp-t")
    check(got == 1, f"sec-grp committed {got}, expected 1")
    print("group join/sync/heartbeat/commit/leave: bob consumes and commits offset 1 after READ")

    # DescribeGroups and ListGroups: DESCRIBE on the group.
    commit_as(ctx, ADMIN, "PLAIN", "sec-g2", "sec-g-t", 1)
    refused("describe group without DESCRIBE",
            lambda: result(bob_admin().describe_consumer_groups(["sec-g2"])["sec-g2"]),
            GROUP_AUTHORIZATION_FAILED)
    check("sec-g2" not in group_ids(bob_admin()), "bob lists sec-g2 without DESCRIBE")
    print("list groups: sec-g2 not listed to bob without DESCRIBE")
    grant(admin, acl(G, "sec-g2", AclOperation.DESCRIBE))
    d = eventually("bob describes sec-g2",
                   lambda: result(bob_admin().describe_consumer_groups(["sec-g2"])["sec-g2"]))
    check(d.group_id == "sec-g2", f"described {d.group_id}")
    eventually("bob lists sec-g2", lambda: check_in("sec-g2", group_ids(bob_admin())))
    print("describe/list groups: bob sees sec-g2 after DESCRIBE")

    # DeleteGroups: DELETE on the group.
    commit_as(ctx, ADMIN, "PLAIN", "sec-g3", "sec-g-t", 1)
    refused("delete group without DELETE",
            lambda: result(bob_admin().delete_consumer_groups(["sec-g3"], request_timeout=10)["sec-g3"]),
            GROUP_AUTHORIZATION_FAILED)
    check(committed(admin, "sec-g3", "sec-g-t") == 1, "sec-g3 lost its offset")
    grant(admin, acl(G, "sec-g3", AclOperation.DELETE))
    eventually("bob deletes sec-g3", lambda: result(
        bob_admin().delete_consumer_groups(["sec-g3"], request_timeout=10)["sec-g3"]))
    check("sec-g3" not in group_ids(admin), "sec-g3 still listed after its deletion")
    print("delete group: bob deletes sec-g3 after DELETE")

    # OffsetDelete (kafka-python): DELETE on the group, READ on the topic.
    delete_group_offsets(ctx, admin)

    # CreateTopics: CREATE on the cluster or the topic (literal, then prefixed).
    def bob_creates(name):
        return result(bob_admin().create_topics([NewTopic(name, 1, 1)], request_timeout=10)[name])

    refused("create topic without CREATE", lambda: bob_creates("sec-new"), TOPIC_AUTHORIZATION_FAILED)
    check("sec-new" not in topics_of(admin), "sec-new was created")
    grant(admin, acl(T, "sec-new", AclOperation.CREATE))
    eventually("bob creates sec-new", lambda: bob_creates("sec-new"))
    check("sec-new" in topics_of(admin), "sec-new not created")
    print("create topics: bob creates sec-new after CREATE (literal)")
    grant(admin, acl(T, "sec-pfx-", AclOperation.CREATE, pattern=ResourcePatternType.PREFIXED))
    eventually("bob creates sec-pfx-one", lambda: bob_creates("sec-pfx-one"))
    refused("create topic outside the prefix", lambda: bob_creates("sec-pfy-one"),
            TOPIC_AUTHORIZATION_FAILED)
    check("sec-pfy-one" not in topics_of(admin), "sec-pfy-one was created")
    print("create topics: a PREFIXED CREATE covers sec-pfx-one, not sec-pfy-one")

    # DeleteTopics: DELETE on the topic.
    def bob_deletes():
        return result(bob_admin().delete_topics(["sec-del"], request_timeout=10)["sec-del"])

    refused("delete topic without DELETE", bob_deletes, TOPIC_AUTHORIZATION_FAILED)
    check("sec-del" in topics_of(admin), "sec-del was deleted")
    grant(admin, acl(T, "sec-del", AclOperation.DELETE))
    eventually("bob deletes sec-del", bob_deletes)
    eventually("sec-del gone", lambda: check_not_in("sec-del", topics_of(admin)))
    print("delete topics: bob deletes sec-del after DELETE")

    # CreatePartitions: ALTER on the topic.
    def bob_adds_partitions():
        return result(bob_admin().create_partitions([NewPartitions("sec-parts", 2)],
                                                    request_timeout=10)["sec-parts"])

    grant(admin, acl(T, "sec-parts", AclOperation.DESCRIBE))
    refused("create partitions without ALTER", bob_adds_partitions, TOPIC_AUTHORIZATION_FAILED)
    check(partitions_of(admin, "sec-parts") == 1, "sec-parts grew")
    grant(admin, acl(T, "sec-parts", AclOperation.ALTER))
    eventually("bob adds a partition", bob_adds_partitions)
    eventually("sec-parts has 2 partitions",
               lambda: check(partitions_of(admin, "sec-parts") == 2, "still 1 partition"))
    print("create partitions: bob grows sec-parts to 2 after ALTER")

    # DescribeConfigs: DESCRIBE_CONFIGS on the topic.
    def bob_describes(restype, name):
        res = ConfigResource(restype, name)
        return result(bob_admin().describe_configs([res], request_timeout=10)[res])

    refused("describe topic configs without DESCRIBE_CONFIGS",
            lambda: bob_describes(ResourceType.TOPIC, "sec-cfg"), TOPIC_AUTHORIZATION_FAILED)
    grant(admin, acl(T, "sec-cfg", AclOperation.DESCRIBE_CONFIGS))
    got = eventually("bob describes sec-cfg", lambda: bob_describes(ResourceType.TOPIC, "sec-cfg"))
    check("retention.ms" in got, f"sec-cfg configs: {sorted(got)}")
    print("describe configs (topic): bob reads sec-cfg's configs after DESCRIBE_CONFIGS")

    # AlterConfigs (whole set) and IncrementalAlterConfigs: ALTER_CONFIGS on the topic.
    before = topic_config(admin, "sec-cfg", "retention.ms")

    def bob_alters():
        res = ConfigResource(ResourceType.TOPIC, "sec-cfg", set_config={"retention.ms": "3600000"})
        return result(bob_admin().alter_configs([res], request_timeout=10)[res])

    refused("alter configs without ALTER_CONFIGS", bob_alters, TOPIC_AUTHORIZATION_FAILED)
    check(topic_config(admin, "sec-cfg", "retention.ms") == before, "sec-cfg changed")
    grant(admin, acl(T, "sec-cfg", AclOperation.ALTER_CONFIGS))
    eventually("bob alters sec-cfg", bob_alters)
    check(topic_config(admin, "sec-cfg", "retention.ms") == "3600000", "sec-cfg not changed")
    print("alter configs: bob sets retention.ms of sec-cfg after ALTER_CONFIGS")

    before = topic_config(admin, "sec-icfg", "retention.ms")

    def bob_alters_incrementally():
        res = ConfigResource(ResourceType.TOPIC, "sec-icfg", incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
        return result(bob_admin().incremental_alter_configs([res], request_timeout=10)[res])

    refused("incremental alter configs without ALTER_CONFIGS", bob_alters_incrementally,
            TOPIC_AUTHORIZATION_FAILED)
    check(topic_config(admin, "sec-icfg", "retention.ms") == before, "sec-icfg changed")
    grant(admin, acl(T, "sec-icfg", AclOperation.ALTER_CONFIGS))
    eventually("bob alters sec-icfg", bob_alters_incrementally)
    check(topic_config(admin, "sec-icfg", "retention.ms") == "7200000", "sec-icfg not changed")
    print("incremental alter configs: bob sets retention.ms of sec-icfg after ALTER_CONFIGS")

    # DescribeConfigs of the broker: DESCRIBE_CONFIGS on the cluster.
    broker = str(next(iter(admin.list_topics(timeout=TIMEOUT_S).brokers)))
    refused("describe broker configs without DESCRIBE_CONFIGS on the cluster",
            lambda: bob_describes(ResourceType.BROKER, broker), CLUSTER_AUTHORIZATION_FAILED)
    grant(admin, acl(B, CLUSTER, AclOperation.DESCRIBE_CONFIGS))
    eventually("bob describes the broker", lambda: bob_describes(ResourceType.BROKER, broker))
    print("describe configs (broker): bob reads them after DESCRIBE_CONFIGS on the cluster")

    # DeleteRecords: DELETE on the topic.
    def bob_deletes_records():
        tp = TopicPartition("sec-dr", 0, 2)
        return result(bob_admin().delete_records([tp], request_timeout=10)[tp])

    grant(admin, acl(T, "sec-dr", AclOperation.DESCRIBE))
    refused("delete records without DELETE", bob_deletes_records, TOPIC_AUTHORIZATION_FAILED)
    check(watermarks(ctx, "sec-dr") == (0, 3), f"sec-dr watermarks {watermarks(ctx, 'sec-dr')}")
    grant(admin, acl(T, "sec-dr", AclOperation.DELETE))
    eventually("bob deletes records", bob_deletes_records)
    check(watermarks(ctx, "sec-dr") == (2, 3), f"sec-dr watermarks {watermarks(ctx, 'sec-dr')}")
    print("delete records: bob moves sec-dr's start to 2 after DELETE")

    idempotent_producer(ctx, admin)

    transactional_id(ctx, admin)

    # DENY wins over ALLOW (also over a wildcard principal's ALLOW).
    grant(admin, acl(T, "sec-deny", AclOperation.READ), acl(T, "sec-deny", AclOperation.WRITE,
                                                            principal="User:*"),
          acl(T, "sec-deny", AclOperation.READ, deny=True),
          acl(T, "sec-deny", AclOperation.WRITE, deny=True), acl(G, "sec-deny-g", AclOperation.READ))
    time.sleep(1)
    values, codes = consume(bob, "sec-deny", "sec-deny-g", 1, stop_codes={TOPIC_AUTHORIZATION_FAILED})
    check(not values and TOPIC_AUTHORIZATION_FAILED in codes, f"DENY READ: {values} {codes}")
    reports, _ = produce(bob, "sec-deny", [b"bob"])
    check(reports == [TOPIC_AUTHORIZATION_FAILED], f"DENY WRITE: {reports}")
    check(watermarks(ctx, "sec-deny")[1] == 1, "bob's denied record was written")
    print("deny wins: bob's READ and WRITE on sec-deny refused with 29 despite ALLOW entries")
    eventually("carol writes sec-deny (User:* ALLOW)", lambda: produced_ok(carol, "sec-deny", [b"c"]))
    print("deny wins: the User:* ALLOW still lets carol write sec-deny")

    # DescribeCluster: Kafka answers it to everyone; only the authorized operations need
    # DESCRIBE on the cluster.
    def bob_describes_cluster():
        return result(bob_admin().describe_cluster(include_authorized_operations=True,
                                                   request_timeout=10))

    d = bob_describes_cluster()
    check(len(d.nodes) >= 1, f"describe cluster brokers: {d.nodes}")
    check(not d.authorized_operations, f"authorized operations without DESCRIBE: {d.authorized_operations}")
    print("describe cluster: answered without ACL (as Kafka does), no authorized operations")

    # The cluster's DESCRIBE: DescribeUserScramCredentials, DescribeAcls, DescribeLogDirs, and
    # ListGroups of every group.
    commit_as(ctx, ADMIN, "PLAIN", "sec-hidden-g", "sec-g-t", 1)
    # Raw: with Odradek's refusal confluent-kafka 2.16.1 reports error 31 for carol, then crashes
    # (segmentation fault) when that AdminClient is destroyed.
    r = Raw(ctx.a.sasl_plaintext)
    try:
        r.login_plain(*BOB)
        code, results = r.describe_scram_users(["carol"])
    finally:
        r.close()
    check(code == CLUSTER_AUTHORIZATION_FAILED,
          f"DescribeUserScramCredentials without DESCRIBE on the cluster: error {code}")
    # Kafka (DescribeUserScramCredentialsRequest.getErrorResponse) answers one result per user
    # asked, each carrying the error, and no credentials.
    check(len(results) == 1 and results[0][1] == CLUSTER_AUTHORIZATION_FAILED and not results[0][2],
          f"DescribeUserScramCredentials refused: per-user results {results}, Kafka gives one per "
          f"user asked with error 31")
    print("describe user scram credentials without DESCRIBE on the cluster: refused with 31 "
          "(top level and for carol), no credential shown")
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
    # confluent-kafka 2.16.1 mishandles a refused DescribeAcls (seen: an empty result, and once a
    # segmentation fault): ask the node directly.
    r = Raw(ctx.a.sasl_plaintext)
    try:
        r.login_plain(*BOB)
        code, n = r.describe_all_acls()
    finally:
        r.close()
    check(code == CLUSTER_AUTHORIZATION_FAILED and n == 0,
          f"DescribeAcls without DESCRIBE on the cluster: error {code}, {n} resources")
    print("describe acls without DESCRIBE on the cluster: refused with 31, no ACL shown")
    log_dirs_refused(ctx)
    check("sec-hidden-g" not in group_ids(bob_admin()), "bob lists sec-hidden-g")
    print("list groups: sec-hidden-g not listed to bob without DESCRIBE on it or the cluster")
    grant(admin, acl(B, CLUSTER, AclOperation.DESCRIBE))
    got = eventually("bob describes carol's credentials",
                     lambda: result(bob_admin().describe_user_scram_credentials(["carol"])["carol"]))
    check([i.mechanism.name for i in got.scram_credential_infos] == ["SCRAM_SHA_256"],
          f"carol's credentials: {got}")
    print("describe user scram credentials: bob reads carol's after DESCRIBE on the cluster")
    got = eventually("bob describes acls", lambda: result(bob_admin().describe_acls(any_acl)))
    check(any(b.name == "sec-meta" for b in got), f"acls described: {got}")
    print(f"describe acls: bob reads {len(got)} bindings after DESCRIBE on the cluster")
    eventually("bob describes log dirs", lambda: log_dirs_ok(ctx))
    print("describe log dirs: bob reads them after DESCRIBE on the cluster")
    eventually("bob lists sec-hidden-g", lambda: check_in("sec-hidden-g", group_ids(bob_admin())))
    print("list groups: bob lists every group after DESCRIBE on the cluster")
    d = eventually("authorized operations", lambda: check_ops(bob_describes_cluster()))
    print(f"describe cluster: authorized operations {sorted(o.name for o in d.authorized_operations)}")

    # The cluster's ALTER: AlterUserScramCredentials, CreateAcls, DeleteAcls, ElectLeaders.
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    def bob_sets_password(user, password):
        up = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode())
        return all_results(bob_admin().alter_user_scram_credentials([up], request_timeout=10))

    refused("alter user scram credentials without ALTER on the cluster",
            lambda: bob_sets_password("carol", "stolen"), CLUSTER_AUTHORIZATION_FAILED)
    admin_client(carol).list_topics(timeout=TIMEOUT_S)
    check_auth_fails(ctx.conf(("carol", "stolen"), mech="SCRAM-SHA-256"), "carol/stolen")
    print("  carol's password unchanged")
    new = acl(T, "sec-bob-made", AclOperation.READ, principal="User:carol")
    refused("create acls without ALTER on the cluster",
            lambda: all_results(bob_admin().create_acls([new], request_timeout=10)),
            CLUSTER_AUTHORIZATION_FAILED)
    meta_filter = AclBindingFilter(ResourceType.TOPIC, "sec-meta", ResourcePatternType.LITERAL,
                                   None, None, AclOperation.ANY, AclPermissionType.ANY)
    refused("delete acls without ALTER on the cluster",
            lambda: all_results(bob_admin().delete_acls([meta_filter], request_timeout=10)),
            CLUSTER_AUTHORIZATION_FAILED)
    check(len(result(admin.describe_acls(meta_filter))) == 1, "sec-meta's ACL changed")
    print("  no ACL created or deleted")

    def bob_elects():
        # (confluent-kafka 2.16's elect_leaders rejects keyword arguments such as request_timeout)
        return result(bob_admin().elect_leaders(ElectionType.PREFERRED,
                                                [TopicPartition("sec-produce", 0)]))

    refused("elect leaders without ALTER on the cluster", bob_elects, CLUSTER_AUTHORIZATION_FAILED)
    grant(admin, acl(B, CLUSTER, AclOperation.ALTER))
    eventually("bob creates an acl",
               lambda: all_results(bob_admin().create_acls([new], request_timeout=10)))
    check(len(result(admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, "sec-bob-made", ResourcePatternType.LITERAL, None, None,
        AclOperation.ANY, AclPermissionType.ANY)))) == 1, "bob's ACL not there")
    print("create acls: bob adds one after ALTER on the cluster")
    eventually("bob deletes an acl",
               lambda: all_results(bob_admin().delete_acls([meta_filter], request_timeout=10)))
    check(not result(admin.describe_acls(meta_filter)), "sec-meta's ACL still there")
    print("delete acls: bob removes sec-meta's after ALTER on the cluster")
    eventually("bob creates user dave", lambda: bob_sets_password("dave", "dave-secret"))
    eventually("dave authenticates", lambda: admin_client(
        ctx.conf(("dave", "dave-secret"), mech="SCRAM-SHA-256")).list_topics(timeout=5))
    print("alter user scram credentials: bob creates dave, who authenticates")
    got = eventually("bob elects leaders", bob_elects)
    for tp, e in got.items():
        check(e is None or e.code() == ELECTION_NOT_NEEDED, f"elect leaders {tp}: {e!r}")
    print("elect leaders: bob's preferred election answered after ALTER on the cluster")
    print("OK deny-matrix", flush=True)


def check_equal(got, want):
    if got != want:
        raise RuntimeError(f"got {got}, expected {want}")


def check_in(x, xs):
    if x not in xs:
        raise RuntimeError(f"{x} not in {sorted(xs)}")


def check_not_in(x, xs):
    if x in xs:
        raise RuntimeError(f"{x} still in {sorted(xs)}")


def ok_codes(got, codes):
    reports, errors = got
    if set(reports) - set(codes) or not reports:
        raise RuntimeError(f"delivery {reports}, errors {errors}")
    return got


def expect_values(got, want):
    values, codes = got
    if values != want:
        raise RuntimeError(f"read {values} (errors {codes}), expected {want}")


def check_ops(d):
    from confluent_kafka.admin import AclOperation

    if not d.authorized_operations or AclOperation.DESCRIBE not in d.authorized_operations:
        raise RuntimeError(f"authorized operations {d.authorized_operations}")
    return d


def check_auth_fails(conf, who, limit=TIMEOUT_S):
    """A client with `conf` reports an authentication failure (librdkafka's _AUTHENTICATION,
    which carries the broker's SASL_AUTHENTICATION_FAILED) and gets no metadata."""
    from confluent_kafka import KafkaError

    errors = []
    a = admin_client(dict(conf, error_cb=errors.append))
    at = deadline(limit)
    while not expired(at) and not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        a.poll(0.2)
        try:
            md = a.list_topics(timeout=1)
            fail(f"{who}: metadata answered without authentication: {sorted(md.topics)}")
        except Exception:  # noqa: BLE001 - no answer is what is expected
            pass
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    check(auth, f"{who}: no authentication error reported (errors: {errors})")
    return str(auth[0])


def idempotent_refused(reports, errors, logs):
    """Whether an idempotent producer's InitProducerId was refused with
    CLUSTER_AUTHORIZATION_FAILED: librdkafka reports it as an error, or (as it retries an
    idempotent producer's PID request) only logs it and times the records out."""
    codes = [e.code() for e in errors] + reports
    text = " ".join([str(e) for e in errors] + logs).lower()
    return CLUSTER_AUTHORIZATION_FAILED in codes or "cluster authorization failed" in text


def idempotent_producer(ctx, admin):
    """InitProducerId for an idempotent producer: IDEMPOTENT_WRITE on the cluster or WRITE on any
    topic (carol and erin have no ACL before this)."""
    from confluent_kafka.admin import AclOperation, ResourceType

    carol = ctx.conf(CAROL, mech="SCRAM-SHA-256")
    # DESCRIBE, so that Metadata does not refuse the topic before InitProducerId is asked.
    grant(admin, acl(ResourceType.TOPIC, "sec-idem", AclOperation.DESCRIBE, principal="User:carol"))
    reports, errors, logs = produce_logged(carol, "sec-idem", [b"carol"], idempotent=True)
    check(idempotent_refused(reports, errors, logs),
          f"carol's idempotent producer without ACL: expected CLUSTER_AUTHORIZATION_FAILED, got "
          f"delivery {reports}, errors {[str(e) for e in errors]}, log {logs[-5:]}")
    check(watermarks(ctx, "sec-idem")[1] == 0, "carol's record was written")
    print("idempotent producer: InitProducerId refused with 31 without IDEMPOTENT_WRITE or any WRITE")
    grant(admin, acl(ResourceType.BROKER, CLUSTER, AclOperation.IDEMPOTENT_WRITE, principal="User:carol"))

    def init_passes():
        reports, errors, logs = produce_logged(carol, "sec-idem", [b"carol"], idempotent=True)
        if idempotent_refused(reports, errors, logs) or reports != [TOPIC_AUTHORIZATION_FAILED]:
            raise RuntimeError(f"delivery {reports}, errors {[str(e) for e in errors]}")

    eventually("carol's InitProducerId", init_passes)
    check(watermarks(ctx, "sec-idem")[1] == 0, "carol's record was written")
    print("idempotent producer: with IDEMPOTENT_WRITE on the cluster, InitProducerId passes and "
          "the produce is refused with 29")
    grant(admin, acl(ResourceType.TOPIC, "sec-idem", AclOperation.WRITE, principal="User:carol"))
    eventually("carol's idempotent producer writes",
               lambda: produced_ok(carol, "sec-idem", [b"carol"], idempotent=True))
    check(watermarks(ctx, "sec-idem")[1] == 1, "carol's record not written once")
    print("idempotent producer: carol writes after WRITE on sec-idem")

    upsert_scram(admin, "erin", "erin-secret", "SCRAM-SHA-512", 4096)
    erin = ctx.conf(("erin", "erin-secret"))
    eventually("erin authenticates", lambda: admin_client(erin).list_topics(timeout=5))
    grant(admin, acl(ResourceType.TOPIC, "sec-idem", AclOperation.WRITE, principal="User:erin"))
    eventually("erin's idempotent producer writes",
               lambda: produced_ok(erin, "sec-idem", [b"erin"], idempotent=True))
    check(watermarks(ctx, "sec-idem")[1] == 2, "erin's record not written once")
    print("idempotent producer: erin, with WRITE on sec-idem only (no IDEMPOTENT_WRITE), writes")


def transactional_id(ctx, admin):
    """A transactional producer's transactional id: FindCoordinator (TRANSACTION) and
    InitProducerId need DESCRIBE and WRITE on it; without, TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AclOperation, ResourceType

    p = Producer(ctx.conf(BOB, **{"transactional.id": "sec-tx"}))
    try:
        p.init_transactions(10)
        fail("bob's init_transactions succeeded without an ACL on his transactional id")
    except KafkaException as e:
        code = e.args[0].code()
    check(code == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, f"init_transactions without ACL: {code}")
    print("transactional producer: init_transactions refused with 53 without WRITE on sec-tx")

    def raw():
        r = Raw(ctx.a.sasl_plaintext)
        try:
            r.login_plain(*BOB)
            body = r.call(10, 1, _str("sec-tx") + b"\x01")  # FindCoordinator v1, TRANSACTION
            find = struct.unpack(">h", body[4:6])[0]
            body = r.call(22, 1, _str("sec-tx") + struct.pack(">i", 60000))  # InitProducerId v1
            init = struct.unpack(">h", body[4:6])[0]
            return find, init
        finally:
            r.close()

    got = raw()
    check(got == (TRANSACTIONAL_ID_AUTHORIZATION_FAILED,) * 2,
          f"FindCoordinator, InitProducerId for sec-tx without ACL: errors {got}")
    print("transactional id: FindCoordinator and InitProducerId refused with 53 without WRITE")
    grant(admin, acl(ResourceType.TRANSACTIONAL_ID, "sec-tx", AclOperation.WRITE))

    def allowed():
        got = raw()
        if TRANSACTIONAL_ID_AUTHORIZATION_FAILED in got:
            raise RuntimeError(f"errors {got}")
        return got

    got = eventually("sec-tx allowed", allowed)
    check(got == (0, 0), f"FindCoordinator, InitProducerId for sec-tx with WRITE: errors {got}")
    print("transactional id: after WRITE on sec-tx, FindCoordinator and InitProducerId answer 0")


def delete_group_offsets(ctx, admin):
    """OffsetDelete with kafka-python as bob: the group's DELETE, then the topic's READ."""
    from confluent_kafka.admin import AclOperation, ResourceType
    from kafka import KafkaAdminClient, TopicPartition as KTP
    import kafka.errors as Errors

    commit_as(ctx, ADMIN, "PLAIN", "sec-g4", "sec-g-t", 1)
    tp = KTP("sec-g-t", 0)

    def bob_deletes():
        a = KafkaAdminClient(**ctx.kp(BOB))
        try:
            return a.delete_group_offsets("sec-g4", [tp])
        finally:
            a.close()

    refused("delete group offsets without DELETE on the group", bob_deletes,
            GROUP_AUTHORIZATION_FAILED)
    check(committed(admin, "sec-g4", "sec-g-t") == 1, "sec-g4's offset deleted")
    grant(admin, acl(ResourceType.GROUP, "sec-g4", AclOperation.DELETE))

    def partition_error():
        got = bob_deletes()[tp]
        if got is Errors.GroupAuthorizationFailedError:
            raise RuntimeError("group DELETE not applied yet")
        return got

    got = eventually("bob's offset delete answered", partition_error)
    check(got is Errors.TopicAuthorizationFailedError, f"without READ on the topic: {got}")
    check(committed(admin, "sec-g4", "sec-g-t") == 1, "sec-g4's offset deleted")
    print("delete group offsets: partition refused with 29 without READ on the topic")
    grant(admin, acl(ResourceType.TOPIC, "sec-g-t", AclOperation.READ))

    def deleted():
        got = bob_deletes()[tp]
        if got is not Errors.NoError:
            raise RuntimeError(f"partition error {got}")

    eventually("bob deletes sec-g4's offset", deleted)
    check(committed(admin, "sec-g4", "sec-g-t") is None, "sec-g4's offset still there")
    print("delete group offsets: bob deletes sec-g4's offset after DELETE + READ")


def describe_log_dirs_raw(ctx):
    """kafka-python DescribeLogDirs as bob: (the response's top-level error code or None where
    the version has none, its results)."""
    from kafka import KafkaAdminClient
    from kafka.protocol.admin import DescribeLogDirsRequest

    a = KafkaAdminClient(**ctx.kp(BOB))

    async def send():
        node = next(iter(a._manager.cluster.brokers())).node_id
        return await a._manager.send(DescribeLogDirsRequest(topics=None), node_id=node)

    try:
        resp = a._manager.run(send)
        return getattr(resp, "error_code", None), list(resp.results)
    finally:
        a.close()


def log_dirs_refused(ctx):
    code, results = describe_log_dirs_raw(ctx)
    check(not results, f"describe log dirs without DESCRIBE on the cluster: {results}")
    check(code in (None, CLUSTER_AUTHORIZATION_FAILED), f"describe log dirs error code {code}")
    print(f"describe log dirs (kafka-python): no directories without DESCRIBE on the cluster "
          f"(error code {code})")


def log_dirs_ok(ctx):
    code, results = describe_log_dirs_raw(ctx)
    if code not in (None, NONE) or not results:
        raise RuntimeError(f"error {code}, {len(results)} log dirs")


# --- raw protocol (auth-failures) ----------------------------------------------------------------


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _uvarint(data, pos):
    """An unsigned varint at `pos`: (position after it, value)."""
    v, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return pos, v
        shift += 7


def _compact_str(data, pos):
    pos, n = _uvarint(data, pos)
    if n == 0:
        return pos, None
    return pos + n - 1, data[pos:pos + n - 1].decode()


def _bytes(b):
    return struct.pack(">i", len(b)) + b


class Raw:
    """One connection speaking Kafka's framing by hand (non-flexible versions only)."""

    def __init__(self, addr, ca=None, timeout=10):
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
        if ca:
            s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=host)
        self.s, self.corr = s, 0

    def send(self, key, version, body):
        self.corr += 1
        msg = struct.pack(">hhi", key, version, self.corr) + _str("security-check") + body
        self.s.sendall(struct.pack(">i", len(msg)) + msg)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise EOFError("closed")
            buf += c
        return buf

    def recv(self):
        n = struct.unpack(">i", self._exact(4))[0]
        data = self._exact(n)
        corr = struct.unpack(">i", data[:4])[0]
        check(corr == self.corr, f"correlation id {corr}, expected {self.corr}")
        return data[4:]

    def call(self, key, version, body):
        self.send(key, version, body)
        return self.recv()

    def api_versions(self):
        body = self.call(18, 0, b"")
        return struct.unpack(">h", body[:2])[0]

    def handshake(self, mechanism):
        """SaslHandshake v1: (error code, mechanisms)."""
        body = self.call(17, 1, _str(mechanism))
        code, n = struct.unpack(">hi", body[:6])
        pos, mechs = 6, []
        for _ in range(n):
            ln = struct.unpack(">h", body[pos:pos + 2])[0]
            mechs.append(body[pos + 2:pos + 2 + ln].decode())
            pos += 2 + ln
        return code, mechs

    def authenticate(self, token):
        """SaslAuthenticate v1: its error code."""
        body = self.call(36, 1, _bytes(token))
        return struct.unpack(">h", body[:2])[0]

    def login_plain(self, user, password):
        code, _ = self.handshake("PLAIN")
        check(code == NONE, f"SaslHandshake PLAIN: error {code}")
        code = self.authenticate(b"\0" + user.encode() + b"\0" + password.encode())
        check(code == NONE, f"SaslAuthenticate PLAIN {user}: error {code}")

    def list_offsets(self, topic, partition, timestamp):
        """ListOffsets v1 for one partition: (error code, offset)."""
        body = self.call(2, 1, struct.pack(">ii", -1, 1) + _str(topic)
                         + struct.pack(">iiq", 1, partition, timestamp))
        pos = 4 + 2 + struct.unpack(">h", body[4:6])[0] + 4
        _p, code, _ts, offset = struct.unpack(">ihqq", body[pos:pos + 22])
        return code, offset

    def describe_all_acls(self):
        """DescribeAcls v1 matching every binding: (error code, number of resources)."""
        any_, null = struct.pack(">b", 1), struct.pack(">h", -1)
        body = self.call(29, 1, any_ + null + any_ + null + null + any_ + any_)
        code, ln = struct.unpack(">hh", body[4:8])
        pos = 8 + max(ln, 0)
        return code, struct.unpack(">i", body[pos:pos + 4])[0]

    def describe_scram_users(self, users):
        """DescribeUserScramCredentials v0 (flexible): (error code, [(user, error code, number
        of credentials)])."""
        body = bytes([len(users) + 1])
        for u in users:
            body += bytes([len(u) + 1]) + u.encode() + b"\0"
        body += b"\0"
        self.corr += 1
        msg = struct.pack(">hhi", 50, 0, self.corr) + _str("security-check") + b"\0" + body
        self.s.sendall(struct.pack(">i", len(msg)) + msg)
        data = self._exact(struct.unpack(">i", self._exact(4))[0])
        pos = 4 + 1 + 4  # correlation id, header tags, throttle
        code = struct.unpack(">h", data[pos:pos + 2])[0]
        pos += 2
        pos, _msg = _compact_str(data, pos)
        pos, n = _uvarint(data, pos)
        results = []
        for _ in range(max(n - 1, 0)):
            pos, user = _compact_str(data, pos)
            ucode = struct.unpack(">h", data[pos:pos + 2])[0]
            pos, _m = _compact_str(data, pos + 2)
            pos, m = _uvarint(data, pos)
            pos += max(m - 1, 0) * 6  # mechanism int8, iterations int32, no tagged fields
            pos, _tags = _uvarint(data, pos)
            results.append((user, ucode, max(m - 1, 0)))
        return code, results

    def closed_by_peer(self, limit=10):
        """True when the peer closes within `limit` seconds (whatever bytes came before)."""
        self.s.settimeout(limit)
        at = deadline(limit)
        try:
            while not expired(at):
                if not self.s.recv(4096):
                    return True
        except (ConnectionError, ssl.SSLError, OSError) as e:
            return not isinstance(e, socket.timeout)
        return False

    def close(self):
        try:
            if getattr(self, "s", None) is not None:
                self.s.close()
        except OSError:
            pass


METADATA_V1_ALL = struct.pack(">i", -1)
# Produce v3: no transactional id, acks 1, 1 s timeout, topic "x" partition 0 with null records.
PRODUCE_V3 = (struct.pack(">h", -1) + struct.pack(">hi", 1, 1000) + struct.pack(">i", 1) + _str("x")
              + struct.pack(">i", 1) + struct.pack(">ii", 0, -1))


def scram_attempt(addr, user, password, mech, final_nonce=lambda cnonce, nonce: nonce):
    """One SCRAM exchange on a fresh connection, computed here (RFC 5802); the client-final
    message carries `final_nonce(client nonce, server-first nonce)` and a proof correct for what
    it carries. Returns SaslAuthenticate's error code for it (None: closed without answer)."""
    import base64
    import hashlib
    import hmac

    h = hashlib.sha512 if mech == "SCRAM-SHA-512" else hashlib.sha256
    cnonce = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
    r = Raw(addr)
    try:
        check(r.handshake(mech)[0] == NONE, f"SaslHandshake {mech}")
        bare = f"n={user},r={cnonce}"
        body = r.call(36, 1, _bytes(("n,," + bare).encode()))
        code = struct.unpack(">h", body[:2])[0]
        check(code == NONE, f"SCRAM client-first for {user}: error {code}")
        pos = 4 + max(struct.unpack(">h", body[2:4])[0], 0)
        n = struct.unpack(">i", body[pos:pos + 4])[0]
        first = body[pos + 4:pos + 4 + n].decode()
        attrs = dict(kv.split("=", 1) for kv in first.split(","))
        salted = hashlib.pbkdf2_hmac(h().name, password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", h).digest()
        without_proof = f"c=biws,r={final_nonce(cnonce, attrs['r'])}"
        auth_message = f"{bare},{first},{without_proof}".encode()
        sig = hmac.new(h(client_key).digest(), auth_message, h).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        try:
            return r.authenticate(f"{without_proof},p={proof}".encode())
        except (EOFError, ConnectionError):
            return None
    finally:
        r.close()


def refused_before_auth(addr, ca, what, steps, request):
    """Runs `steps` on a new connection, then sends `request` (key, version, body): the node must
    close the connection without answering it."""
    r = Raw(addr, ca)
    try:
        steps(r)
        r.s.settimeout(10)
        try:
            r.send(*request)
            r.recv()
            fail(f"{what}: answered before authentication")
        except socket.timeout:
            fail(f"{what}: neither answered nor closed within 10 s")
        except (EOFError, ConnectionError, ssl.SSLError):
            pass
    finally:
        r.close()
    print(f"{what}: connection closed, no answer", flush=True)


def plain_attempt(addr, ca, user, password):
    """One PLAIN authentication on a fresh connection: SaslAuthenticate's error code, or None
    when the node closed the connection without answering."""
    r = Raw(addr, ca)
    try:
        code, _ = r.handshake("PLAIN")
        check(code == NONE, f"SaslHandshake PLAIN: error {code}")
        try:
            return r.authenticate(b"\0" + user.encode() + b"\0" + password.encode())
        except (EOFError, ConnectionError, ssl.SSLError):
            return None
    finally:
        r.close()


def still_serves(ctx, after):
    md = admin_client(ctx.admin_conf()).list_topics(timeout=TIMEOUT_S)
    check(md.brokers, f"after {after}: no broker in admin's metadata")
    r = Raw(ctx.a.sasl_plaintext)
    try:
        check(r.api_versions() == NONE, f"after {after}: ApiVersions failed")
    finally:
        r.close()
    print(f"  node still serves after {after}", flush=True)


def client_hello():
    """The bytes of a TLS ClientHello for localhost."""
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = c.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def auth_failures(ctx):
    from confluent_kafka.admin import UserScramCredentialDeletion, ScramMechanism

    check(ctx.a.sasl_plaintext and ctx.a.ssl, "auth-failures needs --sasl-plaintext and --ssl")
    admin = make_users(ctx)

    # Wrong passwords, an absent user.
    for who, conf in [
        ("PLAIN admin, wrong password", ctx.conf(("admin", "nope"), mech="PLAIN")),
        ("PLAIN bob (a SCRAM user), wrong password", ctx.conf(("bob", "nope"), mech="PLAIN")),
        ("SCRAM-SHA-512 bob, wrong password", ctx.conf(("bob", "nope"))),
        ("SCRAM-SHA-256 carol, wrong password", ctx.conf(("carol", "nope"), mech="SCRAM-SHA-256")),
        ("SCRAM-SHA-256 bob (has only SCRAM-SHA-512)", ctx.conf(BOB, mech="SCRAM-SHA-256")),
        ("SCRAM-SHA-512 absent user", ctx.conf(("nobody", "x"))),
        ("PLAIN absent user", ctx.conf(("nobody", "x"), mech="PLAIN")),
    ]:
        msg = check_auth_fails(conf, who)
        print(f"{who}: confluent-kafka reports {msg}", flush=True)
    # PLAIN accepts SCRAM users with their password.
    admin_client(ctx.conf(BOB, mech="PLAIN")).list_topics(timeout=TIMEOUT_S)
    print("PLAIN bob with the right password: authenticated (PLAIN checks SCRAM credentials)")

    # kafka-python: the broker's error code itself.
    from kafka import KafkaAdminClient
    import kafka.errors as Errors

    # kafka-python 3.0.12 ends with KafkaTimeoutError ("Unable to bootstrap"); the broker's
    # error (58, SaslAuthenticationFailedError) shows in its log.
    import logging

    for mech, user in [("PLAIN", ("admin", "nope")), ("SCRAM-SHA-512", ("bob", "nope"))]:
        lines = []

        class Keep(logging.Handler):
            def emit(self, record):
                lines.append(record.getMessage())

        keep = Keep()
        log = logging.getLogger()  # kafka-python's loggers propagate here
        level = log.level
        log.addHandler(keep)
        log.setLevel(logging.INFO)
        try:
            KafkaAdminClient(**ctx.kp(user, mech=mech, bootstrap_timeout_ms=5000)).close()
            fail(f"kafka-python {mech} with a wrong password connected")
        except Errors.KafkaError as e:
            text = " ".join(lines + [repr(e)])
            check("SaslAuthenticationFailedError" in text or "[Error 58]" in text,
                  f"kafka-python {mech} wrong password: {e!r}, no error 58 in its log: {lines[-5:]}")
            print(f"kafka-python {mech} wrong password: {type(e).__name__}, error 58 "
                  f"(SaslAuthenticationFailedError) in its log", flush=True)
        finally:
            log.removeHandler(keep)
            log.setLevel(level)

    # Raw: the node's own answers.
    for mech, user, token in [
        ("PLAIN", "admin", b"\0admin\0nope"),
    ]:
        r = Raw(ctx.a.sasl_plaintext)
        try:
            check(r.handshake(mech)[0] == NONE, "SaslHandshake PLAIN refused")
            code = r.authenticate(token)
            answered = time.monotonic()
            check(code == SASL_AUTHENTICATION_FAILED, f"raw PLAIN wrong password: error {code}")
            check(r.closed_by_peer(), "connection not closed after a failed authentication")
            # Kafka's delayed close (connection.failed.authentication.delay.ms, 100 ms): the
            # close comes well after the answer, so a client that reads both in one go (as
            # kafka-python does) still sees error 58.
            held = time.monotonic() - answered
            check(held >= 0.08, f"connection closed {held * 1000:.0f} ms after the answer")
        finally:
            r.close()
    print(f"raw SaslAuthenticate PLAIN wrong password: error 58, then the connection is closed "
          f"{held * 1000:.0f} ms later")

    # A deleted user.
    all_results(admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)]))
    eventually("carol's credential deleted", lambda: check_auth_fails(
        ctx.conf(CAROL, mech="SCRAM-SHA-256"), "deleted carol", limit=5))
    print("SCRAM-SHA-256 carol after her credential was deleted: authentication failed")

    # Unknown mechanisms.
    for mech in ["GSSAPI", "OAUTHBEARER", "SCRAM-SHA-1", "plain-ish"]:
        r = Raw(ctx.a.sasl_plaintext)
        try:
            code, mechs = r.handshake(mech)
        finally:
            r.close()
        check(code == UNSUPPORTED_SASL_MECHANISM, f"SaslHandshake {mech}: error {code}")
        check(sorted(mechs) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], f"mechanisms {mechs}")
        print(f"SaslHandshake {mech}: error 33, enabled mechanisms {mechs}", flush=True)

    # Requests before authentication: only ApiVersions and SaslHandshake are answered.
    for addr, ca, name in [(ctx.a.sasl_plaintext, None, "SASL_PLAINTEXT"),
                           (ctx.a.bootstrap, ctx.ca, "SASL_SSL")]:
        refused_before_auth(addr, ca, f"{name}: Metadata as the first request",
                            lambda r: None, (3, 1, METADATA_V1_ALL))
        refused_before_auth(addr, ca, f"{name}: Produce after ApiVersions",
                            lambda r: check(r.api_versions() == NONE, "ApiVersions"),
                            (0, 3, PRODUCE_V3))
        refused_before_auth(addr, ca, f"{name}: Metadata after SaslHandshake, before SaslAuthenticate",
                            lambda r: check(r.handshake("PLAIN")[0] == NONE, "handshake"),
                            (3, 1, METADATA_V1_ALL))
    refused_before_auth(ctx.a.sasl_plaintext, None, "SASL_PLAINTEXT: Metadata after a failed SaslAuthenticate",
                        lambda r: (r.handshake("PLAIN"), r.authenticate(b"\0admin\0nope")),
                        (3, 1, METADATA_V1_ALL))
    still_serves(ctx, "requests before authentication")

    # Malformed SaslAuthenticate tokens.
    rnd = random.Random(7)
    for mech, token in [
        ("PLAIN", b"no separators at all"),
        ("PLAIN", b"\0\0"),
        ("PLAIN", b"\0admin"),
        ("PLAIN", bytes(rnd.randrange(256) for _ in range(3000))),
        ("SCRAM-SHA-256", b"garbage"),
        ("SCRAM-SHA-256", b"n,,n=bob"),
        ("SCRAM-SHA-512", b"n,,n=bob,r=" + b"\xff" * 40),
        ("SCRAM-SHA-512", bytes(rnd.randrange(256) for _ in range(1000))),
    ]:
        r = Raw(ctx.a.sasl_plaintext)
        try:
            check(r.handshake(mech)[0] == NONE, f"handshake {mech}")
            try:
                code = r.authenticate(token)
            except (EOFError, ConnectionError):
                code = None
            check(code != NONE, f"malformed {mech} token {token[:20]!r} accepted")
            check(code is None or r.closed_by_peer(),
                  f"malformed {mech} token: error {code} but the connection stayed open")
        finally:
            r.close()
        print(f"malformed {mech} token {token[:12]!r}...: "
              f"{'closed' if code is None else f'error {code}, then closed'}", flush=True)
    # A SCRAM client-final message whose proof is wrong, after a proper client-first.
    r = Raw(ctx.a.sasl_plaintext)
    try:
        check(r.handshake("SCRAM-SHA-512")[0] == NONE, "handshake SCRAM-SHA-512")
        body = r.call(36, 1, _bytes(b"n,,n=bob,r=clientnonce123"))
        code = struct.unpack(">h", body[:2])[0]
        check(code == NONE, f"SCRAM client-first for bob: error {code}")
        msg_len = struct.unpack(">h", body[2:4])[0]
        pos = 4 + max(msg_len, 0)
        n = struct.unpack(">i", body[pos:pos + 4])[0]
        server_first = body[pos + 4:pos + 4 + n].decode()
        nonce = dict(kv.split("=", 1) for kv in server_first.split(","))["r"]
        final = f"c=biws,r={nonce},p=" + "A" * 88
        try:
            code = r.authenticate(final.encode())
        except (EOFError, ConnectionError):
            code = None
        check(code in (None, SASL_AUTHENTICATION_FAILED), f"wrong SCRAM proof: error {code}")
    finally:
        r.close()
    print(f"SCRAM-SHA-512 client-final with a wrong proof: {code}")
    code = scram_attempt(ctx.a.sasl_plaintext, *BOB, "SCRAM-SHA-512",
                         final_nonce=lambda c, n: n[:-1] + ("x" if n[-1] != "x" else "y"))
    check(code in (None, SASL_AUTHENTICATION_FAILED), f"SCRAM final with another nonce: {code}")
    print(f"SCRAM-SHA-512 client-final with a changed nonce (proof computed over it): {code}")
    code = scram_attempt(ctx.a.sasl_plaintext, *BOB, "SCRAM-SHA-512")
    check(code == NONE, f"SCRAM computed here, right password: error {code}")
    print("SCRAM-SHA-512 computed here with the right password: authenticated")
    still_serves(ctx, "malformed SASL tokens")

    # Garbage on the TLS port.
    host, port = ctx.a.ssl.rsplit(":", 1)
    for what, data, half_close in [
        ("4 KiB of random bytes", bytes(rnd.randrange(256) for _ in range(4096)), False),
        ("a Kafka request in clear", struct.pack(">i", 10) + b"\0\x12\0\0\0\0\0\x01\0\0", False),
        ("half a ClientHello, then EOF", client_hello()[:60], True),
    ]:
        s = socket.create_connection((host, int(port)), timeout=10)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            r = Raw.__new__(Raw)
            r.s = s
            check(r.closed_by_peer(10), f"SSL port, {what}: connection not closed within 10 s")
        finally:
            s.close()
        print(f"SSL port, {what}: connection closed", flush=True)
    # A stalled handshake does not hold up other clients.
    stalled = socket.create_connection((host, int(port)), timeout=10)
    try:
        stalled.sendall(client_hello()[:60])
        still_serves(ctx, "garbage on the TLS port, with a stalled ClientHello open")
        tls_round_trip_kafka_python(ctx, "sec-tls-during-stall", anonymous_acl=True, admin=admin)
    finally:
        stalled.close()
    # The SASL_SSL port: garbage too.
    bhost, bport = ctx.a.bootstrap.rsplit(":", 1)
    s = socket.create_connection((bhost, int(bport)), timeout=10)
    try:
        s.sendall(bytes(rnd.randrange(256) for _ in range(4096)))
        r = Raw.__new__(Raw)
        r.s = s
        check(r.closed_by_peer(10), "SASL_SSL port, random bytes: not closed within 10 s")
    finally:
        s.close()
    print("SASL_SSL port, 4 KiB of random bytes: connection closed")
    still_serves(ctx, "garbage on the TLS ports")

    brute_force(ctx, admin)
    print("OK auth-failures", flush=True)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def brute_force(ctx, admin):
    """200 wrong-password PLAIN attempts over SASL_SSL from 4 threads (half for admin from the
    users file, half for bob, a SCRAM user whose check costs a key derivation) while an
    authenticated producer produces one record at a time; its p99 latency during the attack must
    stay under max(5 x before, 50 ms) and under 500 ms."""
    from confluent_kafka import Producer

    create_topic(admin, "sec-latency")
    from confluent_kafka.admin import AclOperation, ResourceType

    p = Producer(ctx.conf(BOB, **{"linger.ms": 0, "acks": "all"}))
    grant(admin, acl(ResourceType.TOPIC, "sec-latency", AclOperation.WRITE))

    def one():
        done = []
        time.sleep(0.002)  # a steady stream, not a busy loop on a small machine
        t0 = time.monotonic()
        p.produce("sec-latency", value=b"x" * 100, partition=0,
                  on_delivery=lambda err, _m: done.append(err))
        check(p.flush(TIMEOUT_S) == 0, "latency producer: no delivery report")
        if done[0] is not None:
            raise RuntimeError(f"delivery error {done[0]}")
        return time.monotonic() - t0

    eventually("bob writes sec-latency", one)
    for _ in range(20):  # warm up
        one()
    before = [one() for _ in range(200)]

    attempts, results, lock = 200, [], threading.Lock()
    stop = threading.Event()

    def attacker(k):
        for i in range(attempts // 4):
            if stop.is_set():
                return
            user = "admin" if (i + k) % 2 == 0 else "bob"
            try:
                got = plain_attempt(ctx.a.bootstrap, ctx.ca, user, f"guess-{k}-{i}")
            except Exception as e:  # noqa: BLE001
                got = f"error {e!r}"
            with lock:
                results.append(got)

    threads = [threading.Thread(target=attacker, args=(k,), daemon=True) for k in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    during = []
    at = deadline(60)
    while any(t.is_alive() for t in threads) and not expired(at) and len(during) < 100_000:
        during.append(one())
    stop.set()  # only matters when the attack outlasted the bound above
    for t in threads:
        t.join(15)
    took = time.monotonic() - t0
    check(not any(t.is_alive() for t in threads), "attackers still running")
    ok = [x for x in results if x == NONE]
    check(not ok, f"{len(ok)} wrong-password attempts authenticated")
    refusals = sum(1 for x in results if x == SASL_AUTHENTICATION_FAILED)
    other = [x for x in results if x not in (SASL_AUTHENTICATION_FAILED, None)]
    check(len(results) == attempts, f"{len(results)} attempts made of {attempts}")
    check(not other, f"unexpected attempt outcomes: {other[:5]}")
    check(len(during) >= 10, f"only {len(during)} records produced during the attack")
    b, d = p99(before) * 1000, p99(during) * 1000
    print(f"brute force: {len(results)} wrong passwords in {took:.1f}s, {refusals} refused with 58, "
          f"{len(results) - refusals} closed without an answer; producer p99 {b:.1f} ms before, "
          f"{d:.1f} ms during ({len(during)} records)", flush=True)
    check(d < 500, f"p99 produce latency during the attack {d:.1f} ms >= 500 ms")
    check(d <= max(5 * b, 50), f"p99 produce latency during the attack {d:.1f} ms > 5 x {b:.1f} ms")


# --- tls-clients ---------------------------------------------------------------------------------


def tls_round_trip_kafka_python(ctx, topic, anonymous_acl, admin):
    """kafka-python over the SSL listener (User:ANONYMOUS): produce 5, read them back."""
    from confluent_kafka.admin import AclOperation, ResourceType
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    create_topic(admin, topic)
    if anonymous_acl:
        grant(admin, acl(ResourceType.TOPIC, topic, AclOperation.WRITE, principal="User:ANONYMOUS"),
              acl(ResourceType.TOPIC, topic, AclOperation.READ, principal="User:ANONYMOUS"))
    common = dict(bootstrap_servers=ctx.a.ssl, security_protocol="SSL", ssl_cafile=ctx.ca,
                  request_timeout_ms=10000)

    def produce_all():
        p = KafkaProducer(**common, acks="all", max_block_ms=10000)
        try:
            for i in range(5):
                p.send(topic, value=b"tls-%d" % i, partition=0).get(timeout=TIMEOUT_S)
        finally:
            p.close(timeout=5)

    eventually(f"kafka-python SSL produce to {topic}", produce_all)
    c = KafkaConsumer(**common, group_id=None, auto_offset_reset="earliest",
                      consumer_timeout_ms=2000)
    try:
        c.assign([KTP(topic, 0)])
        c.seek_to_beginning()
        got, at = [], deadline()
        while len(got) < 5 and not expired(at):
            for recs in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in recs)
    finally:
        c.close()
    check(got == [b"tls-%d" % i for i in range(5)], f"kafka-python SSL read back {got}")
    print(f"kafka-python over SSL (User:ANONYMOUS): 5 records to {topic} and back", flush=True)


def kp_mtls(ctx, cert, key):
    c = dict(bootstrap_servers=ctx.a.mtls, security_protocol="SSL", ssl_cafile=ctx.ca,
             request_timeout_ms=10000)
    if cert:
        c.update(ssl_certfile=os.path.join(ctx.a.certs, cert), ssl_keyfile=os.path.join(ctx.a.certs, key))
    return c


def tls_clients(ctx):
    from confluent_kafka.admin import AclOperation, ResourceType
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    import kafka.errors as Errors

    check(ctx.a.ssl and ctx.a.sasl_plaintext and ctx.a.mtls and ctx.a.mtls_admin,
          "tls-clients needs --ssl, --sasl-plaintext, --mtls and --mtls-admin")
    admin = make_users(ctx)
    T = ResourceType.TOPIC

    # kafka-python over SSL.
    tls_round_trip_kafka_python(ctx, "tls-ssl", anonymous_acl=True, admin=admin)

    # confluent-kafka over SASL_SSL: SCRAM-SHA-512 (bob), SCRAM-SHA-256 (carol), PLAIN (admin
    # from the file, and bob, a SCRAM user).
    for who, user, mech in [("SCRAM-SHA-512 bob", BOB, "SCRAM-SHA-512"),
                            ("SCRAM-SHA-256 carol", CAROL, "SCRAM-SHA-256"),
                            ("PLAIN admin", ADMIN, "PLAIN"), ("PLAIN bob", BOB, "PLAIN")]:
        topic = "tls-" + who.lower().replace(" ", "-")
        create_topic(admin, topic)
        grant(admin, acl(T, topic, AclOperation.WRITE, principal=f"User:{user[0]}"),
              acl(T, topic, AclOperation.READ, principal=f"User:{user[0]}"),
              acl(ResourceType.GROUP, topic + "-g", AclOperation.READ, principal=f"User:{user[0]}"))
        conf = ctx.conf(user, mech=mech)
        values = [b"%s-%d" % (user[0].encode(), i) for i in range(10)]
        eventually(f"{who} produces", lambda: produced_ok(conf, topic, values))
        eventually(f"{who} consumes", lambda: expect_values(
            consume(conf, topic, topic + "-g", 10, subscribe=True, commit=True), values))
        check(committed(admin, topic + "-g", topic) == 10, f"{who}: offset not committed")
        print(f"confluent-kafka SASL_SSL {who}: 10 records produced, consumed in a group, committed",
              flush=True)

    # mTLS (a second node): principal User:CN=alice,O=test.
    from confluent_kafka.admin import AdminClient

    madmin = AdminClient(ctx.conf(ADMIN, mech="PLAIN", bootstrap=ctx.a.mtls_admin,
                                  protocol="SASL_PLAINTEXT"))
    for t in ["mtls-alice", "mtls-anon"]:
        create_topic(madmin, t)
    grant(madmin, acl(T, "mtls-alice", AclOperation.WRITE, principal="User:CN=alice,O=test"),
          acl(T, "mtls-alice", AclOperation.READ, principal="User:CN=alice,O=test"),
          acl(T, "mtls-anon", AclOperation.WRITE, principal="User:ANONYMOUS"),
          acl(T, "mtls-anon", AclOperation.DESCRIBE, principal="User:ANONYMOUS"))
    alice = kp_mtls(ctx, "client.pem", "client.key")

    def alice_produces(topic):
        p = KafkaProducer(**alice, acks="all", max_block_ms=10000)
        try:
            for i in range(3):
                p.send(topic, value=b"alice-%d" % i, partition=0).get(timeout=TIMEOUT_S)
        finally:
            p.close(timeout=5)

    eventually("alice produces over mTLS", lambda: alice_produces("mtls-alice"))
    c = KafkaConsumer(**alice, group_id=None, auto_offset_reset="earliest")
    try:
        c.assign([KTP("mtls-alice", 0)])
        c.seek_to_beginning()
        got, at = [], deadline()
        while len(got) < 3 and not expired(at):
            for recs in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in recs)
    finally:
        c.close()
    check(got == [b"alice-%d" % i for i in range(3)], f"alice read back {got}")
    print("kafka-python mTLS as User:CN=alice,O=test: 3 records produced and consumed")
    try:
        alice_produces("mtls-anon")
        fail("alice wrote mtls-anon, which only User:ANONYMOUS may write")
    except Errors.TopicAuthorizationFailedError:
        pass
    print("kafka-python mTLS: alice refused (29) on a topic only User:ANONYMOUS may write, so her "
          "principal is her certificate's")

    # The mTLS node runs with --allow-everyone-if-no-acl-found: a topic no ACL names is open to
    # every principal; one with ACLs (mtls-anon) is not.
    create_topic(madmin, "mtls-open")
    eventually("alice writes mtls-open", lambda: alice_produces("mtls-open"))
    print("allow-everyone-if-no-acl-found: alice writes mtls-open, which no ACL names")

    for what, cert, key in [("no client certificate", None, None),
                            ("a certificate the CA did not sign", "rogue.pem", "rogue.key")]:
        try:
            p = KafkaProducer(**kp_mtls(ctx, cert, key), max_block_ms=5000,
                              bootstrap_timeout_ms=5000)
            try:
                p.send("mtls-anon", value=b"x", partition=0).get(timeout=10)
            finally:
                p.close(timeout=5)
            fail(f"mTLS with {what}: produced")
        except Errors.KafkaError as e:
            print(f"kafka-python mTLS with {what}: refused ({type(e).__name__})", flush=True)
    check(watermarks_on(ctx, "mtls-anon") == 0, "a record reached mtls-anon")
    # The same by hand: the TLS session is refused, no Kafka request is answered on it.
    host, port = ctx.a.mtls.rsplit(":", 1)
    for what, cert in [("no client certificate", None), ("the rogue certificate", "rogue")]:
        tls = ssl.create_default_context(cafile=ctx.ca)
        if cert:
            tls.load_cert_chain(os.path.join(ctx.a.certs, f"{cert}.pem"),
                                os.path.join(ctx.a.certs, f"{cert}.key"))
        r = Raw.__new__(Raw)
        r.corr = 0
        try:
            r.s = tls.wrap_socket(socket.create_connection((host, int(port)), timeout=10),
                                  server_hostname=host)
            r.api_versions()
            fail(f"mTLS with {what}: ApiVersions answered")
        except (ssl.SSLError, EOFError, ConnectionError) as e:
            print(f"mTLS by hand with {what}: refused ({type(e).__name__})", flush=True)
        except socket.timeout:
            fail(f"mTLS with {what}: neither answered nor refused within 10 s")
        finally:
            r.close()
    r = Raw.__new__(Raw)
    r.corr = 0
    tls = ssl.create_default_context(cafile=ctx.ca)
    tls.load_cert_chain(os.path.join(ctx.a.certs, "client.pem"), os.path.join(ctx.a.certs, "client.key"))
    r.s = tls.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)
    try:
        check(r.api_versions() == NONE, "mTLS with alice's certificate: ApiVersions failed")
    finally:
        r.close()
    print("mTLS by hand with alice's certificate: ApiVersions answered")

    # librdkafka up to 2.x (kcat 1.7.1 has 2.0.2) sends in its client-final message the client
    # nonce followed by the whole server-first nonce (which already starts with the client
    # nonce), and computes its proof over that. Kafka's ScramSaslServer accepts it: its check is
    # clientFinalMessage.nonce().endsWith(serverFirstMessage.nonce()).
    for mech, user in [("SCRAM-SHA-512", BOB), ("SCRAM-SHA-256", CAROL)]:
        code = scram_attempt(ctx.a.sasl_plaintext, *user, mech, final_nonce=lambda c, n: c + n)
        check(code == NONE, f"{mech} client-final with librdkafka 2.0's nonce (client nonce + "
                            f"server-first nonce): error {code}; Kafka accepts it (endsWith)")
        print(f"{mech}: librdkafka 2.0's client-final nonce (client nonce + server nonce) accepted")

    # kcat over SASL_SSL (SCRAM-SHA-512).
    create_topic(admin, "tls-kcat")
    grant(admin, acl(T, "tls-kcat", AclOperation.WRITE), acl(T, "tls-kcat", AclOperation.READ))
    base = ["kcat", "-b", ctx.a.bootstrap, "-X", "security.protocol=SASL_SSL",
            "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={BOB[0]}",
            "-X", f"sasl.password={BOB[1]}", "-X", f"ssl.ca.location={ctx.ca}"]
    lines = "".join(f"k{i}:kcat-{i}\n" for i in range(10))

    def kcat(args, stdin=""):
        out = subprocess.run(base + args, input=stdin, capture_output=True, text=True, timeout=30)
        if out.returncode != 0 or "ERROR" in out.stderr:
            raise RuntimeError(f"kcat {args}: rc {out.returncode}\n{out.stdout}\n{out.stderr}")
        return out

    eventually("kcat produces", lambda: kcat(["-P", "-t", "tls-kcat", "-p", "0", "-K:",
                                              "-X", "acks=all"], lines))
    out = kcat(["-C", "-t", "tls-kcat", "-p", "0", "-o", "beginning", "-e", "-f", "%k:%s\n"])
    check(out.stdout == lines, f"kcat read back {out.stdout!r}")
    print("kcat SASL_SSL SCRAM-SHA-512: 10 records produced and consumed")
    wrong = [a.replace(f"sasl.password={BOB[1]}", "sasl.password=wrong") for a in base]
    bad = subprocess.run(wrong + ["-L", "-m", "5"],
                         capture_output=True, text=True, timeout=30)
    check(bad.returncode != 0 and "Authentication" in bad.stderr + bad.stdout,
          f"kcat with a wrong password: rc {bad.returncode}\n{bad.stdout}\n{bad.stderr}")
    print("kcat SASL_SSL with a wrong password: fails with an authentication error")
    print("OK tls-clients", flush=True)


def watermarks_on(ctx, topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(ctx.conf(ADMIN, mech="PLAIN", bootstrap=ctx.a.mtls_admin, protocol="SASL_PLAINTEXT",
                          **{"group.id": "security-check-peek"}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)[1]
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True, help="the SASL_SSL listener")
    p.add_argument("--certs", required=True, help="make_test_certs.sh's output directory")
    p.add_argument("--plaintext", help="the PLAINTEXT listener")
    p.add_argument("--ssl", help="the SSL listener (no client certificate)")
    p.add_argument("--sasl-plaintext", help="the SASL_PLAINTEXT listener")
    p.add_argument("--mtls", help="an SSL listener requiring a client certificate (second node)")
    p.add_argument("--mtls-admin", help="the second node's SASL_PLAINTEXT listener")
    p.add_argument("mode", choices=["deny-matrix", "auth-failures", "tls-clients"])
    args = p.parse_args()
    ctx = Ctx(args)
    {"deny-matrix": deny_matrix, "auth-failures": auth_failures, "tls-clients": tls_clients}[args.mode](ctx)


if __name__ == "__main__":
    main()
