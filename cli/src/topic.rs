//! `odradek topic create|list|describe|alter-config|delete|add-partitions`.

use clap::{Args, Subcommand};
use kafka_protocol::messages::CreateTopicsRequest;
use odradek_client::admin;
use odradek_client::cluster::Cluster;
use odradek_client::routing::Retry;
use serde_json::json;

use crate::error::{CliError, Exit, Result, on};
use crate::output::{Table, ids, print, print_json};
use crate::session::{Session, code_name};
use crate::{CLIENT_ID, Global, Output};

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions of each topic.
        #[arg(short = 'p', long, default_value_t = 1)]
        partitions: i32,
        /// Replicas of each partition (-1: the broker's default).
        #[arg(short = 'r', long, default_value_t = -1, allow_hyphen_values = true)]
        replication_factor: i16,
        /// A topic config, KEY=VALUE (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts and replication factors.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(short = 'i', long)]
        internal: bool,
    },
    /// Describe a topic: partitions (leader, replicas, ISR, offsets) and configs.
    Describe { topic: String },
    /// Set (-c KEY=VALUE) or reset (--delete KEY) topic configs.
    AlterConfig {
        topic: String,
        /// Set KEY to VALUE (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Return KEY to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Add partitions to a topic.
    AddPartitions {
        topic: String,
        /// How many partitions to add.
        #[arg(short = 'p', long)]
        partitions: i32,
    },
}

/// `KEY=VALUE` pairs of repeated `-c` flags.
pub(crate) fn parse_configs(configs: &[String]) -> Result<Vec<(String, String)>> {
    configs
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::usage(format!("-c {c}: expected KEY=VALUE"))),
        })
        .collect()
}

pub(crate) fn run(args: &TopicArgs) -> Result<Exit> {
    let g = &args.global;
    let mut s = Session::connect(g)?;
    match &args.command {
        TopicCommand::Create { topics, partitions, replication_factor, configs } => {
            let configs = parse_configs(configs)?;
            if *partitions < 1 {
                return Err(CliError::usage("-p: a topic needs at least one partition"));
            }
            for topic in topics {
                create(&mut s, topic, *partitions, *replication_factor, &configs, g.output)?;
            }
        }
        TopicCommand::List { internal } => list(&mut s, *internal, g.output)?,
        TopicCommand::Describe { topic } => describe(&mut s, topic, g.output)?,
        TopicCommand::AlterConfig { topic, configs, delete } => {
            let set = parse_configs(configs)?;
            if set.is_empty() && delete.is_empty() {
                return Err(CliError::usage("alter-config: give -c KEY=VALUE or --delete KEY"));
            }
            let subject = format!("topic {topic}");
            let resp = s
                .conn
                .call(&admin::alter_topic_configs(topic, &set, delete))
                .map_err(on(&subject))?;
            admin::check_altered(&resp).map_err(on(&subject))?;
            match g.output {
                Output::Table => print(&format!(
                    "altered topic {topic}: {} set, {} reset\n",
                    set.len(),
                    delete.len()
                )),
                Output::Json => print_json(&json!({
                    "topic": topic,
                    "set": set.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "deleted": delete,
                })),
            }
        }
        TopicCommand::Delete { topics } => {
            let v = s
                .conn
                .versions()
                .pick::<kafka_protocol::messages::DeleteTopicsRequest>()
                .map_err(on("delete"))?;
            let subject = format!("topic {}", topics.join(","));
            let resp = s.conn.call_at(v, &admin::delete_topics(topics, v)).map_err(on(&subject))?;
            admin::check_deleted(&resp).map_err(on(&subject))?;
            match g.output {
                Output::Table => print(&format!("deleted topic {}\n", topics.join(", "))),
                Output::Json => print_json(&json!({ "deleted": topics })),
            }
        }
        TopicCommand::AddPartitions { topic, partitions } => {
            if *partitions < 1 {
                return Err(CliError::usage("-p: add at least one partition"));
            }
            let now = s.partitions(topic)?.len();
            let now = i32::try_from(now).map_err(|_| CliError::kafka("too many partitions"))?;
            let total = now.saturating_add(*partitions);
            let subject = format!("topic {topic}");
            let resp =
                s.conn.call(&admin::create_partitions(topic, total)).map_err(on(&subject))?;
            admin::check_partitions_created(&resp).map_err(on(&subject))?;
            match g.output {
                Output::Table => {
                    print(&format!("topic {topic}: {now} -> {total} partitions\n"));
                }
                Output::Json => print_json(&json!({
                    "topic": topic, "before": now, "partitions": total,
                })),
            }
        }
    }
    Ok(Exit::Ok)
}

fn create(
    s: &mut Session,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    output: Output,
) -> Result<()> {
    let subject = format!("topic {topic}");
    let v = s.conn.versions().pick::<CreateTopicsRequest>().map_err(on(&subject))?;
    // A default replication factor (-1) exists from CreateTopics v4.
    let rf = if replication_factor < 0 && v < 4 { 1 } else { replication_factor };
    let req = admin::create_topic_with_configs(topic, partitions, rf, configs);
    let resp = s.conn.call_at(v, &req).map_err(on(&subject))?;
    admin::check_create(&resp, topic).map_err(on(&subject))?;
    match output {
        Output::Table => print(&format!("created topic {topic} ({partitions} partitions)\n")),
        Output::Json => print_json(&json!({
            "topic": topic,
            "partitions": partitions,
            "replication_factor": rf,
            "configs": configs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })),
    }
    Ok(())
}

fn list(s: &mut Session, internal: bool, output: Output) -> Result<()> {
    let view = s.metadata(None)?;
    let topics: Vec<_> = view.topics.iter().filter(|t| internal || !t.internal).collect();
    match output {
        Output::Table => {
            let mut t = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
            for topic in &topics {
                let rf = topic.partitions.first().map_or(0, |p| p.replicas.len());
                t.row(vec![topic.name.clone(), topic.partitions.len().to_string(), rf.to_string()]);
            }
            print(&t.render());
        }
        Output::Json => print_json(&json!(
            topics
                .iter()
                .map(|t| json!({
                    "name": t.name,
                    "partitions": t.partitions.len(),
                    "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                    "internal": t.internal,
                }))
                .collect::<Vec<_>>()
        )),
    }
    Ok(())
}

fn describe(s: &mut Session, topic: &str, output: Output) -> Result<()> {
    let subject = format!("topic {topic}");
    let parts = s.partitions(topic)?;
    let view = s.metadata(Some(&[topic.to_owned()]))?;
    let meta = view
        .topics
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| CliError::kafka(format!("{subject}: not in the Metadata answer")))?;
    let mut cluster = Cluster::new(&s.brokers, CLIENT_ID, topic, Retry::default());
    let starts = cluster.list_offsets(&parts, -2).map_err(on(&subject))?;
    let ends = cluster.list_offsets(&parts, -1).map_err(on(&subject))?;
    let resp = s.conn.call(&admin::describe_topic_configs(topic)).map_err(on(&subject))?;
    let configs = admin::config_entries(&resp).map_err(on(&subject))?;
    let rf = meta.partitions.first().map_or(0, |p| p.replicas.len());
    match output {
        Output::Table => {
            let mut text = format!(
                "NAME        {topic}\nPARTITIONS  {}\nREPLICAS    {rf}\n\n",
                meta.partitions.len()
            );
            let mut t = Table::new(&[
                "PARTITION",
                "LEADER",
                "REPLICAS",
                "ISR",
                "LOG-START-OFFSET",
                "HIGH-WATERMARK",
                "ERROR",
            ]);
            for p in &meta.partitions {
                t.row(vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    ids(&p.replicas),
                    ids(&p.isr),
                    starts.get(&p.partition).map_or("-".into(), i64::to_string),
                    ends.get(&p.partition).map_or("-".into(), i64::to_string),
                    if p.error_code == 0 { String::new() } else { code_name(p.error_code) },
                ]);
            }
            text.push_str(&t.render());
            text.push('\n');
            let mut c = Table::new(&["KEY", "VALUE", "SOURCE"]);
            for e in &configs {
                let value = if e.sensitive {
                    "(sensitive)".into()
                } else {
                    e.value.clone().unwrap_or_default()
                };
                c.row(vec![e.name.clone(), value, admin::config_source_name(e.source).into()]);
            }
            text.push_str(&c.render());
            print(&text);
        }
        Output::Json => print_json(&json!({
            "name": topic,
            "partitions": meta.partitions.iter().map(|p| json!({
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "log_start_offset": starts.get(&p.partition),
                "high_watermark": ends.get(&p.partition),
                "error": if p.error_code == 0 { None } else { Some(code_name(p.error_code)) },
            })).collect::<Vec<_>>(),
            "replication_factor": rf,
            "configs": configs.iter().map(|e| json!({
                "name": e.name,
                "value": if e.sensitive { None } else { e.value.clone() },
                "source": admin::config_source_name(e.source),
                "read_only": e.read_only,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}
