//! Several `odradek serve` processes forming one cluster (the controller quorum wired into the
//! node): what Kafka's clients and tools see of a 3-node KRaft cluster.
//!
//! Each test starts three real processes on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (free ports,
//! fresh data directories; `common::cluster`), all three voters and brokers, and talks to them
//! with raw Kafka requests (`odradek-client`'s framing), the Python clients
//! (`tests/clients/cluster_check.py`) and kcat. Tests run one at a time (the harness's lock).
//! Every wait is bounded (ready lines, exits, polls, client processes); no assertion has an
//! upper time bound: measured times (fencing, failover) are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{
    BrokerWatch, Cluster, ClusterNode, FORM_TIMEOUT, Meta, create_topic_at, create_topic_retrying,
    describe_quorum_at, free_port, metadata_at, node_args, topic_configs_at, wait_until,
};
use common::process::{Out, run_bounded};
use odradek_client::blocking::connect_tcp;
use odradek_records::Codec;

/// Bound on one topic creation (it may wait for a quorum or an election).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a broker being fenced, or unfenced again, after it stops or resumes.
const FENCE_TIMEOUT: Duration = Duration::from_secs(40);
/// Bound on a refused node's log line.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a refused node's exit.
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Bound on one client process (kcat call or Python script).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Session timeout and heartbeat interval of the tests that fence a broker (short, so fencing
/// takes seconds).
const SHORT_SESSION: [&str; 4] =
    ["--broker-session-timeout-ms", "3000", "--broker-heartbeat-interval-ms", "500"];

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const TOPIC_ALREADY_EXISTS: i16 = 36;

fn connect(addr: &str) -> TcpStream {
    connect_tcp(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Per broker id, the partitions of `topic` it leads.
fn leaders_by_broker(m: &Meta, topic: &str) -> BTreeMap<i32, Vec<i32>> {
    let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &m.topics[topic].partitions {
        out.entry(p.leader).or_default().push(p.index);
    }
    out
}

/// Waits until `asker`'s Metadata has `topic` with `partitions` partitions, each with a leader.
fn wait_topic(c: &Cluster, asker: i32, topic: &str, partitions: usize) -> Meta {
    wait_until(&format!("{topic} with leaders in node {asker}'s Metadata"), CREATE_TIMEOUT, || {
        let m = c.metadata(asker)?;
        match m.topics.get(topic) {
            Some(t)
                if t.error_code == 0
                    && t.partitions.len() == partitions
                    && t.partitions.iter().all(|p| p.error_code == 0 && p.leader >= 0) =>
            {
                Ok(m)
            }
            other => Err(format!("{other:?}")),
        }
    })
}

/// A topic to create: name, partition count, configs, the node it is created through.
type TopicSpec = (&'static str, i32, &'static [(&'static str, &'static str)], i32);

/// What must survive restarts, as every node's Metadata and DescribeConfigs say it: per topic,
/// its id and replica assignment, and its configs.
type Durable =
    (BTreeMap<String, (uuid::Uuid, Vec<Vec<i32>>)>, BTreeMap<String, BTreeMap<String, String>>);

fn durable_at(addr: &str) -> Result<Durable, String> {
    let m = metadata_at(addr)?;
    let mut configs = BTreeMap::new();
    for t in m.topics.keys() {
        configs.insert(t.clone(), topic_configs_at(addr, t)?);
    }
    Ok((m.assignment(), configs))
}

/// Waits until every node's view equals `want` (each may still be catching up after a start);
/// on timeout, the message shows the last view against `want`.
fn wait_durable(c: &Cluster, want: &Durable, what: &str) {
    for id in c.ids() {
        wait_until(&format!("{what}: node {id}'s topics as before"), CREATE_TIMEOUT, || {
            let got = durable_at(&c.addr(id))?;
            if &got == want { Ok(()) } else { Err(format!("{got:?}\nwanted {want:?}")) }
        });
    }
}

/// Every node's Metadata after the cluster formed: the brokers (id, host, port, rack) of every
/// node, the same cluster id and a controller among them. CreateTopics sent to a broker that
/// is not the active controller is forwarded: the topic appears on every broker with one topic id, its six
/// partitions' leaders spread two per broker, each partition's only replica its leader. A
/// second create through a third broker is TOPIC_ALREADY_EXISTS.
#[test]
fn brokers_controller_and_forwarded_create_topics() {
    let c = Cluster::start_with(3, |id| vec!["--rack".into(), format!("rack-{id}")]);
    let m = c.wait_formed();
    let ids = c.ids();
    let cluster_id = m.cluster_id.clone();
    assert!(cluster_id.as_ref().is_some_and(|id| !id.is_empty()), "cluster id {cluster_id:?}");
    for id in &ids {
        let m = c.metadata(*id).expect("metadata");
        assert_eq!(m.brokers, c.expected_brokers(&ids), "node {id}");
        assert!(ids.contains(&m.controller_id), "node {id}: controller id {}", m.controller_id);
        assert_eq!(m.cluster_id, cluster_id, "node {id}: cluster id");
    }

    let q = c.wait_leader(&ids, &ids, Duration::from_secs(30));
    println!("active controller: {q:?}");

    // Through a broker that is not the active controller: forwarded.
    let via = *ids.iter().find(|&&i| i != q.leader_id).expect("a follower");
    let (code, msg) = create_topic_at(&c.addr(via), "spread", 6, &[]).expect("CreateTopics");
    assert_eq!(code, 0, "CreateTopics at node {via} (controller {}): {msg:?}", q.leader_id);
    let m = wait_topic(&c, via, "spread", 6);
    let id = m.topics["spread"].id;
    assert!(!id.is_nil(), "topic id");
    for p in &m.topics["spread"].partitions {
        assert_eq!(p.replicas, vec![p.leader], "partition {}", p.index);
    }
    let spread = leaders_by_broker(&m, "spread");
    let counts: Vec<(i32, usize)> = spread.iter().map(|(b, ps)| (*b, ps.len())).collect();
    assert_eq!(counts, vec![(1, 2), (2, 2), (3, 2)], "leaders per broker: {spread:?}");
    for other in &ids {
        let mo = wait_topic(&c, *other, "spread", 6);
        assert_eq!(mo.topics["spread"], m.topics["spread"], "node {other}'s view of spread");
    }

    let third = *ids.iter().rev().find(|&&i| i != via).expect("another node");
    let (code, msg) = create_topic_at(&c.addr(third), "spread", 6, &[]).expect("CreateTopics");
    assert_eq!(code, TOPIC_ALREADY_EXISTS, "second create at node {third}: {msg:?}");
    let m = c.metadata(third).expect("metadata");
    assert_eq!(m.topics["spread"].id, id, "topic id after the second create");
}

/// Admin changes sent to brokers that are not the active controller are forwarded and reach
/// every broker: IncrementalAlterConfigs (through one broker) changes a topic's config,
/// CreatePartitions (through another) grows it from 2 to 5 partitions with leaders on live
/// brokers, DeleteTopics (through the third) removes it everywhere.
#[test]
fn admin_changes_through_any_broker_reach_every_broker() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    use odradek_client::requests::topic_name;

    let c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "admin", 2, &[("retention.ms", "100000")], CREATE_TIMEOUT);
    // Changed through node 2 at once, before node 2 need have heard of the topic: a broker
    // that does not know a topic yet catches up with the quorum (a read barrier) before it
    // would answer UNKNOWN_TOPIC_OR_PARTITION.
    let m = wait_topic(&c, 1, "admin", 2);
    let id = m.topics["admin"].id;
    let first_two = m.assignment()["admin"].1.clone();

    let alter = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str("admin"))
        .with_configs(vec![
            AlterableConfig::default()
                .with_name(kafka_protocol::protocol::StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(kafka_protocol::protocol::StrBytes::from_static_str("200000"))),
        ]);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![alter]);
    let resp: IncrementalAlterConfigsResponse =
        common::cluster::call_addr(&c.addr(2), 1, &req).expect("IncrementalAlterConfigs");
    let r = &resp.responses[0];
    assert_eq!((r.error_code, &r.error_message), (0, &None), "IncrementalAlterConfigs at node 2");
    for b in c.ids() {
        wait_until(&format!("retention.ms 200000 at node {b}"), CREATE_TIMEOUT, || {
            let configs = topic_configs_at(&c.addr(b), "admin")?;
            match configs.get("retention.ms").map(String::as_str) {
                Some("200000") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    let grow = CreatePartitionsTopic::default().with_name(topic_name("admin")).with_count(5);
    let req = CreatePartitionsRequest::default().with_topics(vec![grow]).with_timeout_ms(20_000);
    let resp: CreatePartitionsResponse =
        common::cluster::call_addr(&c.addr(3), 1, &req).expect("CreatePartitions");
    let r = &resp.results[0];
    assert_eq!((r.error_code, &r.error_message), (0, &None), "CreatePartitions at node 3");
    for b in c.ids() {
        let m = wait_topic(&c, b, "admin", 5);
        assert_eq!(m.topics["admin"].id, id, "node {b}: topic id after CreatePartitions");
        assert_eq!(
            m.assignment()["admin"].1[..2],
            first_two[..],
            "node {b}: the first two partitions keep their replicas"
        );
    }
    let m = c.metadata(1).expect("metadata");

    let req = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name("admin")))])
        .with_timeout_ms(20_000);
    let via = if m.controller_id == 1 { 2 } else { 1 };
    let resp: DeleteTopicsResponse =
        common::cluster::call_addr(&c.addr(via), 6, &req).expect("DeleteTopics");
    let r = &resp.responses[0];
    assert_eq!((r.error_code, &r.error_message), (0, &None), "DeleteTopics at node {via}");
    for b in c.ids() {
        wait_until(&format!("admin gone at node {b}"), CREATE_TIMEOUT, || {
            let m = c.metadata(b)?;
            if m.topics.contains_key("admin") {
                Err(format!("{:?}", m.topics["admin"]))
            } else {
                Ok(())
            }
        });
    }
}

/// Each node prints its ready line once it listens, before the quorum forms: node 1 alone
/// (one voter of three: no quorum) is ready and answers Metadata; node 2 then makes a quorum
/// and both list two brokers; node 3 joins, and all three list three.
#[test]
fn each_node_is_ready_before_the_quorum_forms() {
    let mut c = Cluster::configure_with(3, |_| Vec::new());
    c.node(1).start();
    let m = c.metadata(1).expect("Metadata from a node without a quorum");
    println!("node 1 alone: brokers {:?}, controller {}", m.brokers, m.controller_id);
    assert!(m.brokers.len() <= 1, "node 1 alone lists {:?}", m.brokers);
    c.node(2).start();
    c.wait_brokers(&[1, 2], &[1, 2], FORM_TIMEOUT);
    c.node(3).start();
    c.wait_formed();
    create_topic_retrying(&c.addr(3), "late", 3, &[], CREATE_TIMEOUT);
    wait_topic(&c, 1, "late", 3);
}

/// DescribeQuorum (API key 55) of `__cluster_metadata-0`, sent to each broker, answers the
/// same leader (one of the voters), a leader epoch of at least 1 and the three voters; the
/// leader is the controller Metadata names.
#[test]
fn describe_quorum_answers_leader_epoch_and_voters() {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    let ids = c.ids();
    let q = wait_until("DescribeQuorum agreed by every node", Duration::from_secs(30), || {
        let qs: Vec<_> = ids.iter().map(|&id| c.quorum(id)).collect::<Result<_, _>>()?;
        let agreed = qs
            .iter()
            .all(|q| (q.leader_id, q.leader_epoch) == (qs[0].leader_id, qs[0].leader_epoch));
        if agreed && ids.contains(&qs[0].leader_id) {
            Ok(qs[0].clone())
        } else {
            Err(format!("{qs:?}"))
        }
    });
    println!("quorum: {q:?}");
    assert_eq!(q.voters, ids, "DescribeQuorum voters");
    assert!(q.leader_epoch >= 1, "leader epoch {}", q.leader_epoch);
    for id in &ids {
        let m = c.metadata(*id).expect("metadata");
        assert_eq!(m.controller_id, q.leader_id, "node {id}: Metadata's controller id");
    }
}

/// Produce and Fetch of a partition sent to a broker that does not lead it are
/// NOT_LEADER_OR_FOLLOWER (6) and write nothing; at its leader they succeed, whichever broker
/// the topic was created through.
#[test]
fn produce_and_fetch_away_from_the_leader_are_not_leader_or_follower() {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(3), "lead", 6, &[], CREATE_TIMEOUT);
    let m = wait_topic(&c, 1, "lead", 6);
    for p in &m.topics["lead"].partitions {
        for b in c.ids() {
            let mut s = connect(&c.addr(b));
            let batch = common::batch(Codec::None, &[b"x", b"y"]);
            let (code, base) = common::produce_to(&mut s, 9, "lead", p.index, batch);
            let fetched = common::fetch_many(&mut s, "lead", &[(p.index, 0)], 1 << 20, 1 << 20);
            if b == p.leader {
                assert_eq!(
                    (code, base),
                    (0, 0),
                    "produce to partition {} at its leader {b}",
                    p.index
                );
                assert_eq!(
                    (fetched[0].1, fetched[0].2),
                    (0, 2),
                    "fetch of partition {} at its leader {b}",
                    p.index
                );
                assert!(fetched[0].3 > 0, "records of partition {}", p.index);
            } else {
                assert_eq!(
                    code, NOT_LEADER_OR_FOLLOWER,
                    "produce to partition {} at broker {b} (leader {})",
                    p.index, p.leader
                );
                assert_eq!(
                    fetched[0].1, NOT_LEADER_OR_FOLLOWER,
                    "fetch of partition {} at broker {b} (leader {})",
                    p.index, p.leader
                );
                assert_eq!(fetched[0].3, 0, "no records from a non-leader");
            }
        }
    }
    // Nothing the non-leaders refused was written anywhere: each leader holds its 2 records.
    for p in &m.topics["lead"].partitions {
        let mut s = connect(&c.addr(p.leader));
        let got = common::fetch_many(&mut s, "lead", &[(p.index, 0)], 1 << 20, 1 << 20);
        assert_eq!((got[0].1, got[0].2), (0, 2), "partition {} at its leader", p.index);
    }
}

/// A broker SIGSTOPped past its session timeout (3 s here) is fenced: it disappears from the
/// other brokers' Metadata (not before a second has passed) while the live brokers stay
/// listed throughout, and a topic created meanwhile is placed on the live brokers only. After SIGCONT it heartbeats again, reappears, and leads
/// its partitions again.
#[test]
fn a_stopped_broker_is_fenced_and_returns_after_sigcont() {
    let mut c = Cluster::start(3, &SHORT_SESSION);
    c.wait_formed();
    let ids = c.ids();
    let q = c.wait_leader(&ids, &ids, Duration::from_secs(30));
    // The victim is not the active controller: this test is about the broker's session.
    let victim = *ids.iter().rev().find(|&&i| i != q.leader_id).expect("a follower");
    let live: Vec<i32> = ids.iter().copied().filter(|&i| i != victim).collect();
    create_topic_retrying(&c.addr(live[0]), "before", 3, &[], CREATE_TIMEOUT);
    let m = wait_topic(&c, live[0], "before", 3);
    let victims_partitions = leaders_by_broker(&m, "before").remove(&victim).unwrap_or_default();
    assert!(!victims_partitions.is_empty(), "victim {victim} leads none of {m:?}");

    let watch = BrokerWatch::start(c.addr(live[0]), live.clone());
    c.sigstop(victim);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let m = c.metadata(live[0]).expect("metadata");
    assert!(
        m.broker_ids().contains(&victim),
        "broker {victim} fenced within 1 s of SIGSTOP with a 3 s session timeout: {:?}",
        m.brokers
    );
    c.wait_brokers(&live, &live, FENCE_TIMEOUT);
    println!("broker {victim} fenced {:?} after SIGSTOP", stopped.elapsed());
    let m = c.metadata(live[0]).expect("metadata");
    println!("while fenced, before = {:?}", m.topics["before"]);

    // While it is fenced, a new topic's replicas go to the live brokers only.
    create_topic_retrying(&c.addr(live[1]), "during", 4, &[], CREATE_TIMEOUT);
    let m = wait_topic(&c, live[0], "during", 4);
    for p in &m.topics["during"].partitions {
        assert!(
            p.replicas.iter().all(|r| live.contains(r)) && live.contains(&p.leader),
            "partition {} of a topic created while {victim} is fenced: {p:?}",
            p.index
        );
    }

    let missing = watch.finish();
    assert!(
        missing.is_empty(),
        "live brokers {live:?} missing from node {}'s Metadata while broker {victim} was \
         stopped (time since SIGSTOP, brokers listed): {missing:?}",
        live[0]
    );

    c.sigcont(victim);
    let resumed = Instant::now();
    c.wait_brokers(&ids, &ids, FENCE_TIMEOUT);
    println!("broker {victim} unfenced {:?} after SIGCONT", resumed.elapsed());
    let m = wait_topic(&c, live[0], "before", 3);
    for &p in &victims_partitions {
        assert_eq!(m.topics["before"].partitions[p as usize].leader, victim, "partition {p}");
        let mut s = connect(&c.addr(victim));
        let (code, _) =
            common::produce_to(&mut s, 9, "before", p, common::batch(Codec::None, &[b"back"]));
        assert_eq!(code, 0, "produce to partition {p} at {victim} after it returned");
    }
}

/// The active controller itself SIGSTOPped past its session timeout (3 s): the two others
/// elect a new controller, fence it and keep creating topics (on the live brokers only),
/// and the two live brokers stay listed in Metadata throughout (a failover must not fence
/// brokers that heartbeat);
/// after SIGCONT the old controller follows the new one, heartbeats and is listed again, and
/// every node agrees on the topics.
/// With two of three controllers down there is no quorum: CreateTopics through the survivor
/// fails with a retriable error (NOT_CONTROLLER or REQUEST_TIMED_OUT) and creates nothing,
/// while produce and fetch on the partitions the survivor leads go on.
#[test]
fn without_a_quorum_admin_fails_retriably_and_live_partitions_serve() {
    let mut c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "live", 6, &[], CREATE_TIMEOUT);
    for id in c.ids() {
        wait_topic(&c, id, "live", 6);
    }
    let m = c.metadata(1).expect("metadata");
    let mine = leaders_by_broker(&m, "live").remove(&1).unwrap_or_default();
    assert!(!mine.is_empty(), "node 1 leads some of {m:?}");
    c.kill(2);
    c.kill(3);
    let (code, message) = create_topic_at(&c.addr(1), "refused", 1, &[]).expect("an answer");
    assert!(matches!(code, 41 | 7), "a retriable error, not {code}: {message:?}");
    let mut s = connect(&c.addr(1));
    for &p in &mine {
        let batch = common::batch(Codec::None, &[b"a", b"b"]);
        assert_eq!(common::produce_to(&mut s, 9, "live", p, batch), (0, 0), "partition {p}");
        let got = common::fetch_many(&mut s, "live", &[(p, 0)], 1 << 20, 1 << 20);
        assert_eq!((got[0].1, got[0].2), (0, 2), "partition {p} reads back");
    }
    let m = c.metadata(1).expect("metadata");
    assert!(!m.topics.contains_key("refused"), "nothing created without a quorum");
}

/// SIGTERM is a controlled shutdown: the broker has the controller fence it before it stops,
/// so it leaves Metadata long before its session timeout (60 s here) would fence it, and it
/// comes back when restarted.
#[test]
fn a_broker_stopped_with_sigterm_leaves_at_once() {
    let mut c = Cluster::start(3, &["--broker-session-timeout-ms", "60000"]);
    c.wait_formed();
    let ids = c.ids();
    let q = c.wait_leader(&ids, &ids, Duration::from_secs(30));
    let victim = *ids.iter().rev().find(|&&i| i != q.leader_id).expect("a follower");
    let live: Vec<i32> = ids.iter().copied().filter(|&i| i != victim).collect();
    let stopped = Instant::now();
    assert!(c.stop(victim).success(), "a graceful stop exits 0");
    // Well under the 60 s session timeout: only the controlled shutdown can explain it.
    c.wait_brokers(&live, &live, Duration::from_secs(20));
    println!("broker {victim} gone from Metadata {:?} after SIGTERM", stopped.elapsed());
    c.restart(victim);
    c.wait_brokers(&ids, &ids, Duration::from_secs(30));
}

#[test]
fn a_stopped_active_controller_is_replaced_fenced_and_returns() {
    let mut c = Cluster::start(3, &SHORT_SESSION);
    c.wait_formed();
    let ids = c.ids();
    let q = c.wait_leader(&ids, &ids, Duration::from_secs(30));
    let old = q.leader_id;
    let live: Vec<i32> = ids.iter().copied().filter(|&i| i != old).collect();
    let watch = BrokerWatch::start(c.addr(live[0]), live.clone());
    c.sigstop(old);
    let stopped = Instant::now();
    let nq = c.wait_leader(&live, &live, Duration::from_secs(30));
    println!("controller {old} stopped; {} elected after {:?}", nq.leader_id, stopped.elapsed());
    c.wait_brokers(&live, &live, FENCE_TIMEOUT);
    println!("broker {old} fenced {:?} after SIGSTOP", stopped.elapsed());
    create_topic_retrying(&c.addr(live[0]), "while-stopped", 4, &[], CREATE_TIMEOUT);
    let m = wait_topic(&c, live[1], "while-stopped", 4);
    for p in &m.topics["while-stopped"].partitions {
        assert!(live.contains(&p.leader) && p.replicas.iter().all(|r| live.contains(r)), "{p:?}");
    }
    let missing = watch.finish();
    assert!(
        missing.is_empty(),
        "live brokers {live:?} missing from node {}'s Metadata while controller {old} was \
         stopped (time since SIGSTOP, brokers listed): {missing:?}",
        live[0]
    );

    c.sigcont(old);
    let resumed = Instant::now();
    c.wait_brokers(&ids, &ids, FENCE_TIMEOUT);
    println!("broker {old} listed again {:?} after SIGCONT", resumed.elapsed());
    let q2 = c.wait_leader(&ids, &ids, Duration::from_secs(30));
    println!("quorum after SIGCONT: {q2:?}");
    create_topic_retrying(&c.addr(old), "after-cont", 3, &[], CREATE_TIMEOUT);
    let want = wait_topic(&c, live[0], "after-cont", 3).assignment();
    for id in &ids {
        wait_until(&format!("node {id} agrees on the topics"), CREATE_TIMEOUT, || {
            let got = c.metadata(*id)?.assignment();
            if got == want { Ok(()) } else { Err(format!("{got:?}\nwanted {want:?}")) }
        });
    }
}

/// After every node is stopped with SIGTERM (one after the other) and started again, and then
/// after all are SIGKILLed at once and started again, every topic has the same topic id,
/// partition count, replica assignment and configs on every node, and what was produced
/// before the graceful stop is still there.
#[test]
fn topics_survive_graceful_and_crash_restarts_of_every_node() {
    let mut c = Cluster::start(3, &[]);
    c.wait_formed();
    // (name, partitions, configs, the node it is created through)
    let topics: [TopicSpec; 3] = [
        ("keep-a", 6, &[("retention.ms", "3600000"), ("cleanup.policy", "compact")], 1),
        ("keep-b", 3, &[("max.message.bytes", "200000"), ("segment.bytes", "1048576")], 2),
        ("keep-c", 1, &[], 3),
    ];
    for (name, partitions, configs, via) in topics {
        create_topic_retrying(&c.addr(via), name, partitions, configs, CREATE_TIMEOUT);
        wait_topic(&c, 1, name, partitions as usize);
    }
    let m = wait_topic(&c, 1, "keep-b", 3);
    for p in &m.topics["keep-b"].partitions {
        let mut s = connect(&c.addr(p.leader));
        let batch = common::batch(Codec::None, &[b"one", b"two", b"three"]);
        assert_eq!(common::produce_to(&mut s, 9, "keep-b", p.index, batch), (0, 0));
    }
    let before = durable_at(&c.addr(1)).expect("topics");
    assert_eq!(before.0.keys().filter(|n| !n.starts_with("__")).count(), 3, "{before:?}");
    for (name, _, configs, _) in topics {
        for (k, v) in configs {
            assert_eq!(before.1[name].get(*k).map(String::as_str), Some(*v), "{name} {k}");
        }
    }
    wait_durable(&c, &before, "before the restarts");

    for id in c.ids() {
        let status = c.stop(id);
        assert!(status.success(), "node {id} after SIGTERM: {status}");
    }
    c.start_all();
    c.wait_formed();
    wait_durable(&c, &before, "after SIGTERM and restart of every node");
    // Leaders move while the brokers re-register (each is fenced on its way down and
    // unfenced on its way up): read each partition where its leader says it leads it, as a
    // client would after refreshing its metadata on NOT_LEADER_OR_FOLLOWER.
    for index in 0..3 {
        let what = format!("keep-b[{index}] readable at its leader after the graceful restart");
        wait_until(&what, CREATE_TIMEOUT, || {
            let m = c.metadata(1)?;
            let leader = m.topics["keep-b"].partitions[index].leader;
            if leader < 1 {
                return Err(format!("no leader yet: {:?}", m.topics["keep-b"].partitions[index]));
            }
            let mut s = connect(&c.addr(leader));
            let got = common::fetch_many(&mut s, "keep-b", &[(index as i32, 0)], 1 << 20, 1 << 20);
            match (got[0].1, got[0].2) {
                (0, 3) => Ok(()),
                other => Err(format!("{other:?} from broker {leader}")),
            }
        });
    }

    for id in c.ids() {
        c.node(id).signal("-KILL");
    }
    for id in c.ids() {
        c.kill(id);
    }
    c.start_all();
    c.wait_formed();
    wait_durable(&c, &before, "after SIGKILL of every node at once and restart");
    for (name, partitions, _, _) in topics {
        wait_topic(&c, 2, name, partitions as usize);
    }
}

/// Bytes no controller sends, on every node's controller port: garbage, a zero length, a frame
/// that is not JSON, oversize length prefixes. Each connection is closed by the node; every
/// node keeps running, the metadata is unchanged and the quorum still creates topics.
#[test]
fn garbage_on_a_controller_port_closes_the_connection_and_changes_nothing() {
    let mut c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "calm", 2, &[("retention.ms", "60000")], CREATE_TIMEOUT);
    wait_topic(&c, 1, "calm", 2);
    let before = durable_at(&c.addr(1)).expect("topics");
    wait_durable(&c, &before, "before the garbage");
    let q = c.wait_leader(&c.ids(), &c.ids(), Duration::from_secs(30));

    let mut not_json = 16u32.to_be_bytes().to_vec();
    not_json.extend_from_slice(&[0xff; 16]);
    let mut huge = 0x7fff_ffffu32.to_be_bytes().to_vec();
    huge.extend_from_slice(b"more bytes after the length");
    let mut over_frame = ((64u32 << 20) + 1).to_be_bytes().to_vec();
    over_frame.extend_from_slice(&[b'{'; 1024]);
    let mut over_handshake = ((64u32 << 10) + 1).to_be_bytes().to_vec();
    over_handshake.extend_from_slice(&[b'{'; 1024]);
    let noise: Vec<u8> =
        (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let cases: [(&str, Vec<u8>); 7] = [
        ("http request", b"GET / HTTP/1.1\r\nHost: odradek\r\n\r\n".to_vec()),
        ("zero length", vec![0, 0, 0, 0, 1, 2, 3]),
        ("16 bytes that are not json", not_json),
        ("length 2^31-1", huge),
        ("length over the frame bound", over_frame),
        ("length over the handshake bound", over_handshake),
        ("100 kB of noise", noise),
    ];
    for id in c.ids() {
        let addr = c.node(id).controller_addr();
        for (what, bytes) in &cases {
            let closed = closes_after(&addr, bytes);
            println!("node {id} controller port, {what}: closed after {closed:?}");
        }
    }
    for id in c.ids() {
        assert!(c.node(id).is_running(), "node {id} exited after garbage on its controller port");
    }
    wait_durable(&c, &before, "after the garbage");
    c.wait_formed();
    create_topic_retrying(&c.addr(2), "after-garbage", 1, &[], CREATE_TIMEOUT);
    wait_topic(&c, 3, "after-garbage", 1);
    let q2 = c.wait_leader(&c.ids(), &c.ids(), Duration::from_secs(30));
    println!("quorum before {q:?}, after {q2:?}");
    if q2.from_describe_quorum {
        assert_eq!(q2.voters, c.ids(), "voters after the garbage");
    }
}

/// Sends `bytes` to `addr` and waits (at most 30 s) for the peer to close the connection;
/// returns how long that took after the write. Panics if it stays open.
fn closes_after(addr: &str, bytes: &[u8]) -> Duration {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // The peer may close before it read everything: a failed write is a close too.
    let _ = s.write_all(bytes);
    let sent = Instant::now();
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return sent.elapsed(),
            Ok(n) => {
                total += n;
                assert!(total < 1 << 20, "{addr} keeps answering garbage ({total} bytes)");
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{addr}: connection still open 30 s after garbage ({total} bytes read)")
            }
            Err(_) => return sent.elapsed(), // reset
        }
    }
}

/// A fourth node, new (an empty data directory), whose `--controller-quorum-voters` differs
/// from the cluster's (it adds itself) is refused: a log line says why (a line saying refused and naming the voter list, on
/// the newcomer's or a member's stderr), it never becomes a broker of the cluster, and the
/// cluster's brokers, topics and voters do not change.
#[test]
fn a_node_with_another_voter_list_is_refused() {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "mine", 3, &[], CREATE_TIMEOUT);
    wait_topic(&c, 1, "mine", 3);
    let before = durable_at(&c.addr(1)).expect("topics");
    wait_durable(&c, &before, "before the newcomer");

    let host = "127.0.0.2";
    let (port, cport) = (free_port(host), free_port(host));
    let voters = format!("{},4@{host}:{cport}", c.voters);
    let marks = c.log_marks();
    let mut newcomer =
        ClusterNode::new(4, host, port, cport, node_args(4, host, port, cport, &voters));
    newcomer.spawn();
    let refused = |l: &str| {
        let l = l.to_lowercase();
        l.contains("refus") && l.contains("voter")
    };
    let line = wait_until("a log line refusing the other voter list", REFUSAL_TIMEOUT, || {
        if let Some(l) = newcomer.find_log(refused) {
            return Ok(format!("newcomer: {l}"));
        }
        c.find_log_since(&marks, refused).map(|(id, l)| format!("node {id}: {l}")).ok_or_else(
            || {
                format!(
                    "no such line; newcomer exited: {:?}{}",
                    newcomer.exited(),
                    newcomer.logs(30)
                )
            },
        )
    });
    println!("refusal: {line}");
    // Give a wrongly accepted newcomer time to register, then check nothing changed.
    std::thread::sleep(Duration::from_secs(3));
    println!("newcomer exit status: {:?}", newcomer.exited());
    let ids = c.ids();
    for id in &ids {
        let m = c.metadata(*id).expect("metadata");
        assert_eq!(m.brokers, c.expected_brokers(&ids), "node {id}'s brokers after the newcomer");
        match c.quorum(*id) {
            Ok(q) => assert_eq!(q.voters, ids, "node {id}'s voters after the newcomer"),
            Err(e) => println!("voters not checked: {e}"),
        }
    }
    wait_durable(&c, &before, "after the newcomer");
    newcomer.kill();
}

/// A member (node 3) stopped with SIGTERM and started again on its own data directory with
/// a voter list that differs from the cluster's (a fourth voter added) is refused: a line
/// saying refused and naming the voter list appears (on its stderr or a member's), and the
/// topics and the quorum's voters do not change.
#[test]
fn a_member_restarted_with_another_voter_list_is_refused() {
    let mut c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "stay", 3, &[("retention.ms", "90000")], CREATE_TIMEOUT);
    wait_topic(&c, 1, "stay", 3);
    let before = durable_at(&c.addr(1)).expect("topics");
    wait_durable(&c, &before, "before the restart");

    let status = c.stop(3);
    assert!(status.success(), "node 3 after SIGTERM: {status}");
    let extra = format!("4@127.0.0.2:{}", free_port("127.0.0.2"));
    let voters = format!("{},{extra}", c.voters);
    let n3 = c.node(3);
    let at = n3.args.iter().position(|a| a == "--controller-quorum-voters").expect("flag");
    n3.args[at + 1] = voters;
    let marks = c.log_marks();
    c.node(3).spawn();
    let refused = |l: &str| {
        let l = l.to_lowercase();
        l.contains("refus") && l.contains("voter")
    };
    let line = wait_until("a log line refusing node 3's voter list", REFUSAL_TIMEOUT, || {
        c.find_log_since(&marks, refused)
            .map(|(id, l)| format!("node {id}: {l}"))
            .ok_or_else(|| format!("no such line{}", c.nodes[2].logs(20)))
    });
    println!("refusal: {line}");
    for id in [1, 2] {
        let got = durable_at(&c.addr(id)).expect("topics");
        assert_eq!(got, before, "node {id}'s topics after node 3's restart");
        match c.quorum(id) {
            Ok(q) => assert_eq!(q.voters, vec![1, 2, 3], "node {id}'s voters"),
            Err(e) => println!("voters not checked: {e}"),
        }
    }
    create_topic_retrying(&c.addr(2), "still-works", 1, &[], CREATE_TIMEOUT);
    wait_topic(&c, 1, "still-works", 1);
}

/// After the cluster formed, node 3 is SIGKILLed, fenced, and started again with the same id
/// on an empty data directory (a lost disk): it is refused with a log line saying why, broker
/// 3 stays fenced, and the topics do not change.
#[test]
fn a_reused_node_id_on_an_empty_directory_is_refused() {
    let mut c = Cluster::start(3, &SHORT_SESSION);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "owned", 6, &[("retention.ms", "120000")], CREATE_TIMEOUT);
    wait_topic(&c, 1, "owned", 6);
    let before = durable_at(&c.addr(1)).expect("topics");
    wait_durable(&c, &before, "before the reuse");

    c.kill(3);
    c.wait_brokers(&[1, 2], &[1, 2], FENCE_TIMEOUT);
    c.node(3).wipe();
    let marks = c.log_marks();
    c.node(3).spawn();
    let refused = |l: &str| {
        let l = l.to_lowercase();
        l.contains("registered by another")
            || (l.contains("refus")
                && (l.contains("id 3") || l.contains("id=3") || l.contains("node=3")))
    };
    let line = wait_until("a log line refusing the reused node id 3", REFUSAL_TIMEOUT, || {
        c.find_log_since(&marks, refused)
            .map(|(id, l)| format!("node {id}: {l}"))
            .ok_or_else(|| format!("no such line{}", c.nodes[2].logs(20)))
    });
    println!("refusal: {line}");
    // Twice the session timeout: a wrongly accepted node 3 would be unfenced by then.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for id in [1, 2] {
            let m = c.metadata(id).expect("metadata");
            assert_eq!(m.broker_ids(), vec![1, 2], "node {id}'s brokers after the reuse");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for id in [1, 2] {
        let got = durable_at(&c.addr(id)).expect("topics");
        assert_eq!(got, before, "node {id}'s topics after the reuse");
    }
}

/// The documented lost-disk procedure for a broker (README): broker-only node 4 is SIGKILLed
/// and fenced, then started with the same id on an empty data directory: it is refused (a log
/// line says why) and stays unlisted. UnregisterBroker(4), sent to a broker that is not the
/// active controller, is then accepted, and the replacement started once more registers and
/// is listed with its address; topics never change.
#[test]
fn a_broker_whose_disk_was_lost_is_refused_until_unregistered() {
    use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest, UnregisterBrokerResponse};

    let mut c = Cluster::start(3, &SHORT_SESSION);
    c.wait_formed();
    let host = "127.0.0.2";
    let port = free_port(host);
    let mut args = vec!["--node-id".to_owned(), "4".to_owned(), "--listen".to_owned()];
    args.extend([format!("{host}:{port}"), "--controller-quorum-voters".to_owned()]);
    args.extend([c.voters.clone(), "--process-roles".to_owned(), "broker".to_owned()]);
    args.extend(["--smp", "1"].map(String::from));
    args.extend(SHORT_SESSION.map(String::from));
    let mut n4 = ClusterNode::new(4, host, port, 0, args);
    n4.start();
    c.nodes.push(n4);
    let all = [1, 2, 3, 4];
    c.wait_brokers(&all, &all, FORM_TIMEOUT);
    create_topic_retrying(&c.addr(4), "lost", 8, &[], CREATE_TIMEOUT);
    wait_topic(&c, 1, "lost", 8);
    let before = durable_at(&c.addr(1)).expect("topics");
    wait_durable(&c, &before, "before the lost disk");

    c.kill(4);
    c.wait_brokers(&[1, 2, 3], &[1, 2, 3], FENCE_TIMEOUT);
    c.node(4).wipe();
    let marks = c.log_marks();
    c.node(4).spawn();
    let line = wait_until("a log line refusing broker 4's new disk", REFUSAL_TIMEOUT, || {
        c.find_log_since(&marks, |l| l.contains("registered by another"))
            .map(|(id, l)| format!("node {id}: {l}"))
            .ok_or_else(|| format!("no such line{}", c.nodes[3].logs(20)))
    });
    println!("refusal: {line}");
    let status = c.node(4).wait_exit(STOP_WAIT);
    println!("refused node 4 exited: {status}");
    for id in [1, 2, 3] {
        assert_eq!(c.metadata(id).expect("metadata").broker_ids(), vec![1, 2, 3], "node {id}");
    }

    let leader = c.wait_leader(&[1, 2, 3], &[1, 2, 3], Duration::from_secs(30)).leader_id;
    let via = if leader == 1 { 2 } else { 1 };
    let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(4));
    let resp: UnregisterBrokerResponse =
        common::cluster::call_addr(&c.addr(via), 0, &req).expect("UnregisterBroker");
    assert_eq!(
        (resp.error_code, &resp.error_message),
        (0, &None),
        "UnregisterBroker(4) at node {via}"
    );

    c.node(4).wipe();
    c.node(4).start();
    c.wait_brokers(&all, &all, FORM_TIMEOUT);
    wait_durable(&c, &before, "after the replacement registered");
}

/// A fourth node with `process.roles=broker`, configured through ODRADEK_* environment
/// variables only (no flags but its data directory; no controller listener, as a Kafka
/// broker-only node has none), joins as a broker that is not a voter: every node's Metadata
/// lists four brokers, DescribeQuorum still three voters, a topic created through the new
/// broker is forwarded to the controller and its eight partitions are led two per broker.
#[test]
fn a_broker_only_node_configured_by_environment_joins_as_a_fourth_broker() {
    let mut c = Cluster::start(3, &[]);
    c.wait_formed();
    let host = "127.0.0.2";
    let port = free_port(host);
    let mut n4 = ClusterNode::new(4, host, port, 0, Vec::new());
    n4.envs = vec![
        ("ODRADEK_NODE_ID".into(), "4".into()),
        ("ODRADEK_LISTEN".into(), format!("{host}:{port}")),
        ("ODRADEK_CONTROLLER_QUORUM_VOTERS".into(), c.voters.clone()),
        ("ODRADEK_PROCESS_ROLES".into(), "broker".into()),
        ("ODRADEK_SMP".into(), "1".into()),
    ];
    n4.start();
    c.nodes.push(n4);
    let all = [1, 2, 3, 4];
    c.wait_brokers(&all, &all, FORM_TIMEOUT);
    // Asked of the voters: a broker-only node's Metadata may name any broker as controller.
    let q = c.wait_leader(&[1, 2, 3], &[1, 2, 3], Duration::from_secs(30));
    if q.from_describe_quorum {
        assert_eq!(q.voters, vec![1, 2, 3], "voters with a broker-only node: {q:?}");
    }
    println!("quorum with a broker-only node: {q:?}");

    create_topic_retrying(&c.addr(4), "four", 8, &[], CREATE_TIMEOUT);
    let m = wait_topic(&c, 1, "four", 8);
    let spread = leaders_by_broker(&m, "four");
    let counts: Vec<(i32, usize)> = spread.iter().map(|(b, ps)| (*b, ps.len())).collect();
    assert_eq!(counts, vec![(1, 2), (2, 2), (3, 2), (4, 2)], "leaders per broker: {spread:?}");
    let m4 = wait_topic(&c, 4, "four", 8);
    assert_eq!(m4.topics["four"], m.topics["four"], "node 4's view of four");
    let p = m.topics["four"].partitions.iter().find(|p| p.leader == 4).expect("led by 4");
    let mut s = connect(&c.addr(4));
    let got = common::produce_to(&mut s, 9, "four", p.index, common::batch(Codec::None, &[b"4"]));
    assert_eq!(got, (0, 0), "produce at the broker-only node");
}

/// Three times: SIGKILL the active controller (Metadata's controller id, which is
/// DescribeQuorum's leader); the two survivors elect a new one and topic creation resumes
/// (the failover time is printed: kill to first created topic), and neither survivor leaves
/// Metadata's brokers in the 7 s after the kill (over twice the 3 s session timeout); the
/// old controller is restarted and rejoins before the next round.
#[test]
fn killing_the_active_controller_elects_a_new_one() {
    let mut c = Cluster::start(3, &SHORT_SESSION);
    c.wait_formed();
    let ids = c.ids();
    for round in 1..=3 {
        let q = c.wait_leader(&ids, &ids, Duration::from_secs(30));
        let old = q.leader_id;
        let survivors: Vec<i32> = ids.iter().copied().filter(|&i| i != old).collect();
        let watch = BrokerWatch::start(c.addr(survivors[0]), survivors.clone());
        c.kill(old);
        let killed = Instant::now();
        let nq = c.wait_leader(&survivors, &survivors, Duration::from_secs(30));
        let elected = killed.elapsed();
        if nq.from_describe_quorum {
            assert!(
                nq.leader_epoch > q.leader_epoch,
                "epoch {} then {}",
                q.leader_epoch,
                nq.leader_epoch
            );
        }
        let topic = format!("after-failover-{round}");
        create_topic_retrying(&c.addr(survivors[0]), &topic, 1, &[], CREATE_TIMEOUT);
        let created = killed.elapsed();
        // Past twice the session timeout, so a live broker wrongly fenced would show.
        std::thread::sleep(Duration::from_secs(7).saturating_sub(killed.elapsed()));
        let missing = watch.finish();
        assert!(
            missing.is_empty(),
            "round {round}: live brokers {survivors:?} missing from node {}'s Metadata after \
             controller {old} was killed (time since the kill, brokers listed): {missing:?}",
            survivors[0]
        );
        println!(
            "round {round}: controller {old} killed; {} elected (epoch {}) after {elected:?}; \
             topic created after {created:?}",
            nq.leader_id, nq.leader_epoch
        );
        c.restart(old);
        c.wait_formed();
        for id in &ids {
            wait_until(&format!("{topic} known at node {id}"), CREATE_TIMEOUT, || {
                let m = c.metadata(*id)?;
                if m.topics.contains_key(&topic) {
                    Ok(())
                } else {
                    Err(format!("{:?}", m.topics.keys()))
                }
            });
        }
    }
    let m = c.metadata(1).expect("metadata");
    let names: BTreeSet<&str> =
        m.topics.keys().map(String::as_str).filter(|n| !n.starts_with("__")).collect();
    assert_eq!(
        names,
        BTreeSet::from(["after-failover-1", "after-failover-2", "after-failover-3"]),
        "topics after three failovers"
    );
    match describe_quorum_at(&c.addr(2)) {
        Ok(q) => assert_eq!(q.voters, ids, "voters after three failovers"),
        Err(e) => println!("voters not checked: {e}"),
    }
}

// --- Real clients ----------------------------------------------------------------------------

/// Runs a client with `input` on stdin; fails the test if it is still running after
/// [`CLIENT_TIMEOUT`] (it is then killed by PID).
fn run(cmd: &mut Command, input: &[u8]) -> Out {
    run_bounded(cmd, input, CLIENT_TIMEOUT).unwrap_or_else(|out| {
        panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}\n{}", out.text())
    })
}

/// `tests/clients/cluster_check.py` with the three brokers as three separate bootstraps:
/// confluent-kafka and kafka-python each list 3 brokers; a 6-partition topic created through
/// the first has leaders on all three; 600 messages produced through the second are all
/// consumed through the third.
#[test]
fn python_clients_see_one_cluster() {
    check_with_every_bootstrap("cluster_check.py");
}

/// `tests/clients/reassign_check.py`: kafka-python moves a partition
/// (AlterPartitionReassignments, ListPartitionReassignments) to the broker that did not hold
/// it, refusals come back as Kafka's errors, confluent-kafka's and kafka-python's ElectLeaders
/// answer ELECTION_NOT_NEEDED, and what was produced before the move is read back after it.
#[test]
fn python_admin_clients_move_a_partition_and_elect_leaders() {
    check_with_every_bootstrap("reassign_check.py");
}

/// Runs `tests/clients/<script>` against a fresh 3-node cluster, each broker given as its
/// own `--bootstrap`; the script must succeed.
fn check_with_every_bootstrap(script: &str) {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients").join(script);
    let out = run(
        Command::new("python3")
            .arg(&path)
            .arg("--bootstrap")
            .args(c.ids().iter().map(|&i| c.addr(i))),
        b"",
    );
    assert!(out.status.success(), "{script} failed ({})\n{}", out.status, out.text());
    println!("{}", out.stdout);
}

/// Consumer groups on a cluster, with the single-node groups test's script
/// (`tests/clients/group_consume.py`): an idempotent producer (producer ids from the
/// controller) and three members of one group (the coordinator is the leader of the group's
/// `__consumer_offsets` partition, on any broker), every record consumed exactly once;
/// confluent-kafka through broker 2, kafka-python through broker 3.
#[test]
fn python_consumer_groups_across_the_cluster() {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/group_consume.py");
    for (client, via) in [("confluent", 2), ("kafka-python", 3)] {
        let out = run(
            Command::new("python3").arg(&path).args([
                "--bootstrap",
                &c.addr(via),
                "--client",
                client,
            ]),
            b"",
        );
        assert!(
            out.status.success() && out.stdout.contains("OK group"),
            "group_consume.py --client {client} through node {via} ({})\n{}",
            out.status,
            out.text()
        );
        println!("{client}: {}", out.stdout.trim());
    }
}

/// kcat: `-L` through one broker lists the three brokers (their addresses) and a topic's
/// three partitions led by three brokers; keyed lines produced through a second broker are
/// all consumed, with their keys, through the third.
#[test]
fn kcat_sees_one_cluster() {
    let c = Cluster::start(3, &[]);
    c.wait_formed();
    create_topic_retrying(&c.addr(1), "kc", 3, &[], CREATE_TIMEOUT);
    wait_topic(&c, 1, "kc", 3);
    let kcat = |addr: String, args: &[&str], input: &str| {
        let out = run(Command::new("kcat").args(["-b", &addr]).args(args), input.as_bytes());
        assert!(
            out.status.success() && !out.stderr.contains("ERROR"),
            "kcat -b {addr} {args:?} failed ({})\n{}",
            out.status,
            out.text()
        );
        out
    };
    let out = kcat(c.addr(1), &["-L", "-m", "20"], "");
    let t = out.text();
    assert!(t.contains("3 brokers:"), "{t}");
    for id in c.ids() {
        assert!(t.contains(&format!("broker {id} at {}", c.addr(id))), "broker {id}: {t}");
    }
    assert!(t.contains("topic \"kc\" with 3 partitions:"), "{t}");
    let leaders: BTreeSet<&str> = t
        .lines()
        .filter(|l| l.contains("partition ") && l.contains("leader "))
        .filter_map(|l| l.split("leader ").nth(1)?.split(',').next())
        .collect();
    assert_eq!(leaders, BTreeSet::from(["1", "2", "3"]), "leaders of kc: {t}");

    let input: String = (0..90).map(|i| format!("k{i}:value-{i}\n")).collect();
    kcat(c.addr(2), &["-P", "-t", "kc", "-K:"], &input);
    let out = kcat(c.addr(3), &["-C", "-t", "kc", "-o", "beginning", "-e", "-f", "%k:%s\n"], "");
    let got: BTreeSet<&str> = out.stdout.lines().collect();
    let want: BTreeSet<&str> = input.lines().collect();
    assert_eq!(got, want, "consumed through broker 3\n{}", out.text());
    assert_eq!(out.stdout.lines().count(), 90, "{}", out.text());
}
