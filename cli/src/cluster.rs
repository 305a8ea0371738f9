//! `odradek cluster info|health`.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::{Exit, Result};
use crate::output::{Table, ids, print, print_json};
use crate::session::{Session, code_name};
use crate::{Global, Output};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The cluster id, the controller and the brokers.
    Info,
    /// Exit 0 if every partition has a leader and its full ISR, 4 otherwise (listing why).
    Health,
}

pub(crate) fn run(args: &ClusterArgs) -> Result<Exit> {
    let g = &args.global;
    let mut s = Session::connect(g)?;
    match args.command {
        ClusterCommand::Info => {
            let view = s.metadata(Some(&[]))?;
            match g.output {
                Output::Table => {
                    let mut text = format!(
                        "CLUSTER     {}\nCONTROLLER  {}\n\n",
                        view.cluster_id.as_deref().unwrap_or("-"),
                        view.controller_id
                    );
                    let mut t = Table::new(&["ID", "HOST", "PORT", "RACK"]);
                    for b in &view.brokers {
                        let rack = b.rack.clone().unwrap_or_else(|| "-".into());
                        t.row(vec![b.id.to_string(), b.host.clone(), b.port.to_string(), rack]);
                    }
                    text.push_str(&t.render());
                    print(&text);
                }
                Output::Json => print_json(&json!({
                    "cluster_id": view.cluster_id,
                    "controller_id": view.controller_id,
                    "brokers": view.brokers.iter().map(|b| json!({
                        "id": b.id, "host": b.host, "port": b.port, "rack": b.rack,
                    })).collect::<Vec<_>>(),
                })),
            }
            Ok(Exit::Ok)
        }
        ClusterCommand::Health => {
            let view = s.metadata(None)?;
            let mut problems = Vec::new();
            let mut partitions = 0usize;
            if view.brokers.is_empty() {
                problems.push("no broker is registered".to_owned());
            }
            for t in &view.topics {
                if t.error_code != 0 {
                    problems.push(format!("topic {}: {}", t.name, code_name(t.error_code)));
                    continue;
                }
                for p in &t.partitions {
                    partitions += 1;
                    let at = format!("{}/{}", t.name, p.partition);
                    if p.leader < 0 || (p.error_code != 0 && p.error_code != 9) {
                        let why = if p.error_code == 0 {
                            "NO_LEADER".into()
                        } else {
                            code_name(p.error_code)
                        };
                        problems.push(format!("{at}: no leader ({why})"));
                    } else if p.isr.len() < p.replicas.len() {
                        problems.push(format!(
                            "{at}: under-replicated, ISR [{}] of replicas [{}]",
                            ids(&p.isr),
                            ids(&p.replicas)
                        ));
                    }
                }
            }
            let healthy = problems.is_empty();
            match g.output {
                Output::Table => {
                    let mut text = format!(
                        "{}: {} brokers, {} topics, {} partitions\n",
                        if healthy { "healthy" } else { "unhealthy" },
                        view.brokers.len(),
                        view.topics.len(),
                        partitions
                    );
                    for p in &problems {
                        text.push_str(&format!("  {p}\n"));
                    }
                    print(&text);
                }
                Output::Json => print_json(&json!({
                    "healthy": healthy,
                    "brokers": view.brokers.len(),
                    "topics": view.topics.len(),
                    "partitions": partitions,
                    "problems": problems,
                })),
            }
            Ok(if healthy { Exit::Ok } else { Exit::Unhealthy })
        }
    }
}
