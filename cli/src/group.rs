//! `odradek group list|describe|seek|delete`.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use odradek_client::ClientError;
use odradek_client::admin::{self, GroupView};
use odradek_client::blocking::Conn;
use odradek_client::cluster::Cluster;
use odradek_client::routing::Retry;
use serde_json::json;

use crate::consume::{Start, resolve};
use crate::error::{CliError, Exit, Result, on};
use crate::output::{Table, print, print_json};
use crate::session::Session;
use crate::{CLIENT_ID, Global, Output};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups of every broker.
    List,
    /// Members, assignments, committed offsets, log ends and lag per partition.
    Describe { group: String },
    /// Commit new positions for a group without members.
    Seek {
        group: String,
        /// start, end, @TIMESTAMP_MS (the first offset at or after it) or OFFSET.
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Only this topic (default: every topic the group has committed offsets of).
        #[arg(long)]
        topic: Option<String>,
        /// Print the new positions without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group without members (its committed offsets go with it).
    Delete { group: String },
}

/// Parses `--to`.
///
/// # Errors
///
/// A usage error for anything but start, end, @TIMESTAMP_MS or a non-negative offset.
pub fn parse_to(s: &str) -> Result<Start> {
    let bad = || CliError::usage(format!("--to {s}: expected start, end, @TIMESTAMP_MS or OFFSET"));
    Ok(match s {
        "start" | "earliest" | "beginning" => Start::Earliest,
        "end" | "latest" => Start::Latest,
        _ => match s.strip_prefix('@') {
            Some(ts) => Start::Timestamp(ts.parse().map_err(|_| bad())?),
            None => {
                let o: i64 = s.parse().map_err(|_| bad())?;
                if o < 0 {
                    return Err(bad());
                }
                Start::Offset(o)
            }
        },
    })
}

/// Kafka's GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

fn describe_on(s: &mut Session, coord: &mut Conn, group: &str) -> Result<(GroupView, Offsets)> {
    let subject = format!("group {group}");
    let resp = coord.call(&admin::describe_group(group)).map_err(on(&subject))?;
    let view = admin::group_view(&resp, group).map_err(on(&subject))?;
    let resp = match coord.call(&admin::offset_fetch_all(group)) {
        Ok(r) => r,
        // A broker that cannot answer "every topic" (Tansu): name each topic instead.
        Err(ClientError::Decode { .. }) => {
            let topics: Vec<(String, Vec<i32>)> = s
                .metadata(None)?
                .topics
                .into_iter()
                .filter(|t| !t.internal)
                .map(|t| (t.name, t.partitions.iter().map(|p| p.partition).collect()))
                .collect();
            coord.call(&admin::offset_fetch_of(group, &topics)).map_err(on(&subject))?
        }
        Err(e) => return Err(CliError::client(&subject, &e)),
    };
    let committed = admin::committed_offsets(&resp, group).map_err(on(&subject))?;
    Ok((view, committed))
}

pub(crate) fn run(args: &GroupArgs) -> Result<Exit> {
    let g = &args.global;
    let mut s = Session::connect(g)?;
    match &args.command {
        GroupCommand::List => list(&mut s, g.output)?,
        GroupCommand::Describe { group } => describe(&mut s, group, g.output)?,
        GroupCommand::Seek { group, to, topic, dry_run } => {
            seek(&mut s, group, parse_to(to)?, topic.as_deref(), *dry_run, g.output)?;
        }
        GroupCommand::Delete { group } => {
            let subject = format!("group {group}");
            let mut coord = s.coordinator(group)?;
            let resp = coord.call(&admin::delete_group(group)).map_err(on(&subject))?;
            admin::check_group_deleted(&resp).map_err(on(&subject))?;
            match g.output {
                Output::Table => print(&format!("deleted group {group}\n")),
                Output::Json => print_json(&json!({ "deleted": group })),
            }
        }
    }
    Ok(Exit::Ok)
}

fn list(s: &mut Session, output: Output) -> Result<()> {
    let view = s.metadata(Some(&[]))?;
    let mut groups: BTreeMap<String, admin::ListedGroup> = BTreeMap::new();
    let addrs: Vec<String> = if view.brokers.is_empty() {
        vec![s.conn.addr().to_owned()]
    } else {
        view.brokers.iter().map(|b| format!("{}:{}", b.host, b.port)).collect()
    };
    for addr in addrs {
        let subject = format!("broker {addr}");
        let mut conn = Conn::connect_as(&addr, CLIENT_ID).map_err(on(&subject))?;
        let resp = conn.call(&admin::list_groups()).map_err(on(&subject))?;
        for lg in admin::listed_groups(&resp).map_err(on(&subject))? {
            groups.insert(lg.group.clone(), lg);
        }
    }
    match output {
        Output::Table => {
            let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for lg in groups.values() {
                t.row(vec![lg.group.clone(), lg.state.clone(), lg.protocol_type.clone()]);
            }
            print(&t.render());
        }
        Output::Json => print_json(&json!(
            groups
                .values()
                .map(|lg| json!({
                    "group": lg.group, "state": lg.state, "protocol_type": lg.protocol_type,
                }))
                .collect::<Vec<_>>()
        )),
    }
    Ok(())
}

/// One partition's line of `describe`.
struct Row {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: Option<i64>,
    owner: Option<(String, String, String)>,
}

fn describe(s: &mut Session, group: &str, output: Output) -> Result<()> {
    let mut coord = s.coordinator(group)?;
    let (view, committed) = describe_on(s, &mut coord, group)?;
    if view.state == "Dead" && committed.is_empty() {
        return Err(CliError::client(
            &format!("group {group}"),
            &ClientError::Broker { what: String::new(), code: GROUP_ID_NOT_FOUND },
        ));
    }
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    let mut topics: BTreeSet<String> = committed.keys().cloned().collect();
    for m in &view.members {
        for (t, parts) in &m.assignment {
            topics.insert(t.clone());
            for &p in parts {
                let who = (m.member_id.clone(), m.client_id.clone(), m.client_host.clone());
                owners.insert((t.clone(), p), who);
            }
        }
    }
    let mut rows = Vec::new();
    for topic in &topics {
        let subject = format!("topic {topic}");
        let parts = match s.partitions(topic) {
            Ok(p) => p,
            // A deleted topic's commits are still shown, without log ends.
            Err(_) => committed.get(topic).map(|m| m.keys().copied().collect()).unwrap_or_default(),
        };
        let mut cluster = Cluster::new(&s.brokers, CLIENT_ID, topic, Retry::default());
        let ends = cluster.list_offsets(&parts, -1).map_err(on(&subject)).unwrap_or_default();
        for p in parts {
            rows.push(Row {
                topic: topic.clone(),
                partition: p,
                committed: committed.get(topic).and_then(|m| m.get(&p)).copied(),
                end: ends.get(&p).copied(),
                owner: owners.get(&(topic.clone(), p)).cloned(),
            });
        }
    }
    let lag = |r: &Row| match (r.committed, r.end) {
        (Some(c), Some(e)) => Some((e - c).max(0)),
        _ => None,
    };
    let opt = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    match output {
        Output::Table => {
            let total: i64 = rows.iter().filter_map(lag).sum();
            let mut text = format!(
                "GROUP      {group}\nSTATE      {}\nPROTOCOL   {}\nMEMBERS    {}\nTOTAL-LAG  {total}\n\n",
                view.state,
                if view.protocol_type.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{}/{}", view.protocol_type, view.protocol)
                },
                view.members.len(),
            );
            let mut t = Table::new(&[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "MEMBER-ID",
                "CLIENT-ID",
                "HOST",
            ]);
            for r in &rows {
                let (m, c, h) =
                    r.owner.clone().unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
                t.row(vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    opt(r.committed),
                    opt(r.end),
                    opt(lag(r)),
                    m,
                    c,
                    h,
                ]);
            }
            text.push_str(&t.render());
            print(&text);
        }
        Output::Json => print_json(&json!({
            "group": group,
            "state": view.state,
            "protocol_type": view.protocol_type,
            "protocol": view.protocol,
            "members": view.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "host": m.client_host,
                "assignment": m.assignment.iter().map(|(t, p)| (t.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|r| json!({
                "topic": r.topic,
                "partition": r.partition,
                "committed": r.committed,
                "log_end": r.end,
                "lag": lag(r),
                "member_id": r.owner.as_ref().map(|o| o.0.clone()),
            })).collect::<Vec<_>>(),
            "total_lag": rows.iter().filter_map(lag).sum::<i64>(),
        })),
    }
    Ok(())
}

fn seek(
    s: &mut Session,
    group: &str,
    to: Start,
    topic: Option<&str>,
    dry_run: bool,
    output: Output,
) -> Result<()> {
    let subject = format!("group {group}");
    let mut coord = s.coordinator(group)?;
    let (view, committed) = describe_on(s, &mut coord, group)?;
    if !view.members.is_empty() {
        return Err(CliError::kafka(format!(
            "{subject}: NON_EMPTY_GROUP: the group has {} member(s); stop its consumers before seeking",
            view.members.len()
        )));
    }
    let topics: Vec<String> = match topic {
        Some(t) => vec![t.to_owned()],
        None => committed.keys().cloned().collect(),
    };
    if topics.is_empty() {
        return Err(CliError::usage(format!(
            "{subject}: the group has no committed offsets; name the topic with --topic"
        )));
    }
    let mut new: Offsets = BTreeMap::new();
    for t in &topics {
        let parts = s.partitions(t)?;
        let mut cluster = Cluster::new(&s.brokers, CLIENT_ID, t, Retry::default());
        let pos = resolve(&mut cluster, &parts, to).map_err(on(&format!("topic {t}")))?;
        new.insert(t.clone(), pos.into_iter().collect());
    }
    if !dry_run {
        let resp = coord.call(&admin::admin_commit(group, &new)).map_err(on(&subject))?;
        admin::check_committed(&resp, group).map_err(on(&subject))?;
    }
    let current = |t: &str, p: i32| committed.get(t).and_then(|m| m.get(&p)).copied();
    match output {
        Output::Table => {
            let mut t = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
            for (topic, parts) in &new {
                for (&p, &o) in parts {
                    let cur = current(topic, p).map_or("-".to_owned(), |c| c.to_string());
                    t.row(vec![topic.clone(), p.to_string(), cur, o.to_string()]);
                }
            }
            let mut text = t.render();
            text.push_str(if dry_run { "dry run: nothing committed\n" } else { "committed\n" });
            print(&text);
        }
        Output::Json => print_json(&json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": new.iter().flat_map(|(topic, parts)| parts.iter().map(move |(&p, &o)| json!({
                "topic": topic, "partition": p, "current": current(topic, p), "new": o,
            }))).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}
