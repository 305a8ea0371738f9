//! A connection to the cluster for the admin commands: the first bootstrap broker that
//! answers, Metadata from it, and connections to group coordinators.

use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use odradek_client::admin::{self, ClusterView};
use odradek_client::blocking::Conn;
use odradek_client::cluster::bootstrap_list;
use odradek_client::{ClientError, kafka_error_name};

use crate::error::{CliError, Exit, Result};
use crate::{CLIENT_ID, Global};

/// How long finding a group's coordinator may keep answering "not ready".
const COORDINATOR_WAIT: Duration = Duration::from_secs(15);
const COORDINATOR_POLL: Duration = Duration::from_millis(200);
/// FindCoordinator's retriable answers: COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR.
const COORDINATOR_NOT_READY: [i16; 3] = [14, 15, 16];

/// One connection to a bootstrap broker.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) brokers: String,
    pub(crate) conn: Conn,
}

impl Session {
    /// Connects to the first of the global `--brokers` that answers ApiVersions.
    pub(crate) fn connect(global: &Global) -> Result<Session> {
        let list = bootstrap_list(&global.brokers);
        if list.is_empty() {
            return Err(CliError::usage("--brokers names no broker"));
        }
        let mut last = None;
        for addr in &list {
            match Conn::connect_as(addr, CLIENT_ID) {
                Ok(conn) => return Ok(Session { brokers: global.brokers.clone(), conn }),
                Err(e) => last = Some(e),
            }
        }
        let why = last.map(|e| e.to_string()).unwrap_or_default();
        Err(CliError {
            exit: Exit::Connect,
            line: format!(
                "cannot connect to any of {}: {why}; check --brokers or ODRADEK_BROKERS",
                global.brokers
            ),
        })
    }

    /// Metadata of `topics` (every topic for `None`).
    pub(crate) fn metadata(&mut self, topics: Option<&[String]>) -> Result<ClusterView> {
        let v =
            self.conn.versions().pick::<MetadataRequest>().map_err(crate::error::on("metadata"))?;
        let resp = self
            .conn
            .call_at(v, &admin::metadata_of(topics, v))
            .map_err(crate::error::on("metadata"))?;
        Ok(admin::cluster_view(&resp))
    }

    /// The partitions of `topic`, sorted.
    pub(crate) fn partitions(&mut self, topic: &str) -> Result<Vec<i32>> {
        let view = self.metadata(Some(&[topic.to_owned()]))?;
        let subject = format!("topic {topic}");
        let t = view.topics.into_iter().find(|t| t.name == topic).ok_or_else(|| {
            CliError::client(&subject, &ClientError::Broker { what: String::new(), code: 3 })
        })?;
        if t.error_code != 0 {
            return Err(CliError::client(
                &subject,
                &ClientError::Broker { what: String::new(), code: t.error_code },
            ));
        }
        Ok(t.partitions.iter().map(|p| p.partition).collect())
    }

    /// A connection to `group`'s coordinator, waiting at most [`COORDINATOR_WAIT`] while the
    /// broker says it is not ready.
    pub(crate) fn coordinator(&mut self, group: &str) -> Result<Conn> {
        let subject = format!("group {group}");
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let resp = self
                .conn
                .call(&admin::find_group_coordinator(group))
                .map_err(crate::error::on(&subject))?;
            match admin::coordinator_addr(&resp, group) {
                Ok(addr) => {
                    return Conn::connect_as(&addr, CLIENT_ID).map_err(crate::error::on(&subject));
                }
                Err(e) => {
                    let retriable =
                        e.kafka_code().is_some_and(|c| COORDINATOR_NOT_READY.contains(&c));
                    if !retriable || Instant::now() > deadline {
                        return Err(CliError::client(&subject, &e));
                    }
                    std::thread::sleep(COORDINATOR_POLL);
                }
            }
        }
    }
}

/// "NAME" of a Kafka error code (for tables).
pub(crate) fn code_name(code: i16) -> String {
    kafka_error_name(code)
}
