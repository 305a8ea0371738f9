//! `odradek quota describe|alter`: client quotas (KIP-546's DescribeClientQuotas and
//! AlterClientQuotas), what Kafka's `kafka-configs.sh --entity-type users|clients` does.

use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::error::{CliError, Exit, Result, on};
use crate::output::{Table, print, print_json};
use crate::session::{Session, code_name};
use crate::{Global, Output};

#[derive(Debug, Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: QuotaCommand,
}

/// Which entity: a user, a client id, or both; `--user-default`/`--client-id-default` name
/// the default entity of that kind (each user, or client id, gets the quota for itself).
#[derive(Debug, Clone, Args)]
pub struct Entity {
    /// The user (a principal's name: `alice` for `User:alice`).
    #[arg(long, conflicts_with = "user_default")]
    pub user: Option<String>,
    /// The default user entity.
    #[arg(long)]
    pub user_default: bool,
    /// The client id.
    #[arg(long, conflicts_with = "client_id_default")]
    pub client_id: Option<String>,
    /// The default client-id entity.
    #[arg(long)]
    pub client_id_default: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// The quotas set for the entities that match (all when no entity is named).
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
    /// Sets and removes an entity's quotas: `--set producer_byte_rate=1048576` (also
    /// `consumer_byte_rate`, `request_percentage`), `--delete KEY`.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE to set (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// KEY to remove (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

impl Entity {
    /// (type, name) pairs; a `None` name is the default entity.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out = Vec::new();
        if self.user.is_some() || self.user_default {
            out.push(("user", self.user.clone()));
        }
        if self.client_id.is_some() || self.client_id_default {
            out.push(("client-id", self.client_id.clone()));
        }
        out
    }
}

fn entity_text(parts: &[(String, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn run(args: &QuotaArgs) -> Result<Exit> {
    let g = &args.global;
    let mut session = Session::connect(g)?;
    match &args.command {
        QuotaCommand::Describe { entity } => describe(&mut session, g, entity),
        QuotaCommand::Alter { entity, set, delete } => alter(&mut session, entity, set, delete),
    }
}

fn describe(session: &mut Session, g: &Global, entity: &Entity) -> Result<Exit> {
    let subject = "quota describe";
    let components = entity
        .parts()
        .into_iter()
        .map(|(kind, name)| {
            let c = ComponentData::default().with_entity_type(s(kind));
            match name {
                Some(n) => c.with_match_type(0).with_match(Some(s(&n))),
                None => c.with_match_type(1),
            }
        })
        .collect();
    let req = DescribeClientQuotasRequest::default().with_components(components);
    let v = session.conn.versions().pick::<DescribeClientQuotasRequest>().map_err(on(subject))?;
    let resp = session.conn.call_at(v, &req).map_err(on(subject))?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(format!(
            "{subject}: {}: {}",
            code_name(resp.error_code),
            resp.error_message.as_deref().unwrap_or("")
        )));
    }
    let mut rows = Vec::new();
    for e in resp.entries.unwrap_or_default() {
        let parts: Vec<(String, Option<String>)> = e
            .entity
            .iter()
            .map(|d| (d.entity_type.to_string(), d.entity_name.as_ref().map(|n| n.to_string())))
            .collect();
        for v in e.values {
            rows.push((entity_text(&parts), v.key.to_string(), v.value));
        }
    }
    match g.output {
        Output::Table => {
            let mut t = Table::new(&["ENTITY", "KEY", "VALUE"]);
            for (e, k, v) in &rows {
                t.row(vec![e.clone(), k.clone(), v.to_string()]);
            }
            print(&t.render());
        }
        Output::Json => print_json(&json!(
            rows.iter()
                .map(|(e, k, v)| json!({"entity": e, "key": k, "value": v}))
                .collect::<Vec<_>>()
        )),
    }
    Ok(Exit::Ok)
}

fn alter(
    session: &mut Session,
    entity: &Entity,
    set: &[String],
    delete: &[String],
) -> Result<Exit> {
    let subject = "quota alter";
    let parts = entity.parts();
    if parts.is_empty() {
        return Err(CliError::usage(
            "name an entity: --user NAME, --user-default, --client-id ID or --client-id-default",
        ));
    }
    if set.is_empty() && delete.is_empty() {
        return Err(CliError::usage("nothing to change: give --set KEY=VALUE or --delete KEY"));
    }
    let mut ops = Vec::new();
    for item in set {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--set {item}: not KEY=VALUE")))?;
        let value: f64 = value
            .parse()
            .map_err(|_| CliError::usage(format!("--set {item}: {value} is not a number")))?;
        ops.push(OpData::default().with_key(s(key)).with_value(value));
    }
    for key in delete {
        ops.push(OpData::default().with_key(s(key)).with_remove(true));
    }
    let wire = parts
        .iter()
        .map(|(kind, name)| {
            EntityData::default().with_entity_type(s(kind)).with_entity_name(name.as_deref().map(s))
        })
        .collect();
    let req = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(wire).with_ops(ops)]);
    let v = session.conn.versions().pick::<AlterClientQuotasRequest>().map_err(on(subject))?;
    let resp = session.conn.call_at(v, &req).map_err(on(subject))?;
    for e in &resp.entries {
        if e.error_code != 0 {
            return Err(CliError::kafka(format!(
                "{subject}: {}: {}",
                code_name(e.error_code),
                e.error_message.as_deref().unwrap_or("")
            )));
        }
    }
    let owned: Vec<(String, Option<String>)> =
        parts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    print(&format!("altered quotas of {}\n", entity_text(&owned)));
    Ok(Exit::Ok)
}
