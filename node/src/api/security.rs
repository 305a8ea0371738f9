//! CreateAcls, DescribeAcls, DeleteAcls (KIP-140) and DescribeUserScramCredentials,
//! AlterUserScramCredentials (KIP-554): wire ⇄ the controller's ACL bindings and SCRAM
//! credentials. Changes are proposed to the quorum and answered once committed.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use odradek_controller::image::security::{SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use odradek_controller::{AclBinding, AclFilter, Command, CommandResult};
use odradek_net::error_code as ec;

use super::str_bytes;
use crate::error::KafkaError;
use crate::security::sasl::credential_from_salted;
use crate::shard::Shard;

const NO_AUTHORIZER: &str = "no authorizer is configured on the broker (--authorizer acl)";

fn error_of(e: &KafkaError) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    (e.code.code(), Some(str_bytes(&e.message)))
}

pub async fn create_acls(ctx: &Shard, req: &CreateAclsRequest) -> CreateAclsResponse {
    let mut results = vec![AclCreationResult::default(); req.creations.len()];
    if !ctx.security.config.authorizer {
        for r in &mut results {
            r.error_code = ec::SECURITY_DISABLED.code();
            r.error_message = Some(str_bytes(NO_AUTHORIZER));
        }
        return CreateAclsResponse::default().with_results(results);
    }
    let mut valid = Vec::new();
    let mut slots = Vec::new();
    for (i, c) in req.creations.iter().enumerate() {
        let b = AclBinding {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        };
        match b.invalid() {
            Some(reason) => {
                results[i].error_code = ec::INVALID_REQUEST.code();
                results[i].error_message = Some(str_bytes(&reason));
            }
            None => {
                valid.push(b);
                slots.push(i);
            }
        }
    }
    if !valid.is_empty()
        && let Err(e) = propose_visible(ctx, Command::CreateAcls { bindings: valid }).await
    {
        for i in slots {
            (results[i].error_code, results[i].error_message) = error_of(&e);
        }
    }
    CreateAclsResponse::default().with_results(results)
}

/// Proposes `command` and, once committed, waits (bounded) until this broker's catalogue has
/// applied it, so that the client's next request here sees its change: a Describe right after
/// a Create or Delete, or the very next authorization check.
async fn propose_visible(ctx: &Shard, command: Command) -> Result<CommandResult, KafkaError> {
    let result = ctx.metadata.propose(command).await?;
    if let Ok(CommandResult::Barrier { index }) = ctx.metadata.propose(Command::Barrier).await {
        crate::cluster::wait_for(&*ctx.metadata, super::admin::VISIBLE_WAIT, |c| {
            c.applied_index >= index
        })
        .await;
    }
    Ok(result)
}

fn filter_of(
    resource_type: i8,
    name: &Option<kafka_protocol::protocol::StrBytes>,
    pattern_type: i8,
    principal: &Option<kafka_protocol::protocol::StrBytes>,
    host: &Option<kafka_protocol::protocol::StrBytes>,
    (operation, permission): (i8, i8),
) -> AclFilter {
    AclFilter {
        resource_type,
        resource_name: name.as_ref().map(|s| s.to_string()),
        pattern_type,
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation,
        permission,
    }
}

pub fn describe_acls(ctx: &Shard, req: &DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.security.config.authorizer {
        return DescribeAclsResponse::default()
            .with_error_code(ec::SECURITY_DISABLED.code())
            .with_error_message(Some(str_bytes(NO_AUTHORIZER)));
    }
    let filter = filter_of(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        (req.operation, req.permission_type),
    );
    let snapshot = ctx.metadata.snapshot();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in snapshot.security.acls.source.iter().filter(|b| filter.matches(b)) {
        by_resource.entry((b.resource_type, &b.resource_name, b.pattern_type)).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(&b.principal))
                .with_host(str_bytes(&b.host))
                .with_operation(b.operation)
                .with_permission_type(b.permission),
        );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete_acls(ctx: &Shard, req: &DeleteAclsRequest) -> DeleteAclsResponse {
    let n = req.filters.len();
    let failed = |code: i16, message: &str| {
        let r = DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)));
        DeleteAclsResponse::default().with_filter_results(vec![r; n])
    };
    if !ctx.security.config.authorizer {
        return failed(ec::SECURITY_DISABLED.code(), NO_AUTHORIZER);
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                (f.operation, f.permission_type),
            )
        })
        .collect();
    match propose_visible(ctx, Command::DeleteAcls { filters }).await {
        Ok(CommandResult::AclsDeleted { matched }) => {
            let results = matched
                .into_iter()
                .map(|hits| {
                    let acls = hits
                        .iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type)
                                .with_resource_name(str_bytes(&b.resource_name))
                                .with_pattern_type(b.pattern_type)
                                .with_principal(str_bytes(&b.principal))
                                .with_host(str_bytes(&b.host))
                                .with_operation(b.operation)
                                .with_permission_type(b.permission)
                        })
                        .collect();
                    DeleteAclsFilterResult::default().with_matching_acls(acls)
                })
                .collect();
            DeleteAclsResponse::default().with_filter_results(results)
        }
        Ok(other) => failed(ec::UNKNOWN_SERVER_ERROR.code(), &format!("odd reply {other:?}")),
        Err(e) => failed(e.code.code(), &e.message),
    }
}

/// Kafka's `ScramMechanism` codes.
fn mechanism_name(code: i8) -> Option<&'static str> {
    match code {
        1 => Some("SCRAM-SHA-256"),
        2 => Some("SCRAM-SHA-512"),
        _ => None,
    }
}

fn mechanism_code(name: &str) -> i8 {
    match name {
        "SCRAM-SHA-256" => 1,
        "SCRAM-SHA-512" => 2,
        _ => 0,
    }
}

pub fn describe_scram(
    ctx: &Shard,
    req: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let snapshot = ctx.metadata.snapshot();
    let scram = &snapshot.security.scram;
    let info = |user: &str| -> DescribeUserScramCredentialsResult {
        let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
        match scram.get(user) {
            Some(creds) => result.with_credential_infos(
                creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(mechanism_code(m))
                            .with_iterations(c.iterations as i32)
                    })
                    .collect(),
            ),
            None => result.with_error_code(ec::RESOURCE_NOT_FOUND.code()).with_error_message(Some(
                str_bytes(&format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )),
            )),
        }
    };
    let results = match &req.users {
        None => scram.keys().map(|u| info(u)).collect(),
        Some(users) if users.is_empty() => scram.keys().map(|u| info(u)).collect(),
        Some(users) => {
            let mut seen = std::collections::HashSet::new();
            users
                .iter()
                .map(|u| {
                    if !seen.insert(u.name.as_str()) {
                        return DescribeUserScramCredentialsResult::default()
                            .with_user(u.name.clone())
                            .with_error_code(ec::DUPLICATE_RESOURCE.code())
                            .with_error_message(Some(str_bytes("user named twice")));
                    }
                    info(&u.name)
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter_scram(
    ctx: &Shard,
    req: &AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let snapshot = ctx.metadata.snapshot();
    // Per user: the error found, if any (Kafka answers one result per user).
    let mut users: BTreeMap<String, Option<(ec::ErrorCode, String)>> = BTreeMap::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let mut upsert = Vec::new();
    let mut delete = Vec::new();
    let note = |users: &mut BTreeMap<String, Option<(ec::ErrorCode, String)>>,
                user: &str,
                error: Option<(ec::ErrorCode, String)>| {
        let slot = users.entry(user.to_owned()).or_insert(None);
        if slot.is_none() {
            *slot = error;
        }
    };
    for d in &req.deletions {
        let user = d.name.to_string();
        *seen.entry((user.clone(), d.mechanism)).or_default() += 1;
        let error = match mechanism_name(d.mechanism) {
            None => Some((ec::UNSUPPORTED_SASL_MECHANISM, "unknown SCRAM mechanism".to_owned())),
            Some(m) if !snapshot.security.scram.get(&user).is_some_and(|c| c.contains_key(m)) => {
                Some((
                    ec::RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist".to_owned(),
                ))
            }
            Some(m) => {
                delete.push((user.clone(), m.to_owned()));
                None
            }
        };
        note(&mut users, &user, error);
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        *seen.entry((user.clone(), u.mechanism)).or_default() += 1;
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        let error = match mechanism_name(u.mechanism) {
            None => Some((ec::UNSUPPORTED_SASL_MECHANISM, "unknown SCRAM mechanism".to_owned())),
            Some(_) if user.is_empty() => {
                Some((ec::UNACCEPTABLE_CREDENTIAL, "the user name is empty".to_owned()))
            }
            Some(_) if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) => {
                Some((
                    ec::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "iterations {} outside {SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX}",
                        u.iterations
                    ),
                ))
            }
            Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => {
                Some((ec::UNACCEPTABLE_CREDENTIAL, "empty salt or salted password".to_owned()))
            }
            Some(m) => match credential_from_salted(m, iterations, &u.salt, &u.salted_password) {
                Some(c) => {
                    upsert.push((user.clone(), m.to_owned(), c));
                    None
                }
                None => Some((ec::UNSUPPORTED_SASL_MECHANISM, "unknown mechanism".to_owned())),
            },
        };
        note(&mut users, &user, error);
    }
    for ((user, _), count) in &seen {
        if *count > 1 {
            users.insert(
                user.clone(),
                Some((ec::DUPLICATE_RESOURCE, "a user's mechanism is altered twice".to_owned())),
            );
        }
    }
    // Only users whose every alteration is valid change, all in one command.
    upsert.retain(|(u, _, _)| users.get(u).is_some_and(Option::is_none));
    delete.retain(|(u, _)| users.get(u).is_some_and(Option::is_none));
    if !(upsert.is_empty() && delete.is_empty())
        && let Err(e) = propose_visible(ctx, Command::AlterScram { upsert, delete }).await
    {
        for slot in users.values_mut().filter(|s| s.is_none()) {
            *slot = Some((e.code, e.message.clone()));
        }
    }
    let results = users
        .into_iter()
        .map(|(user, error)| {
            let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match error {
                None => r,
                Some((code, message)) => {
                    r.with_error_code(code.code()).with_error_message(Some(str_bytes(&message)))
                }
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// A quota entity from the wire's (entity_type, entity_name) pairs: `user` and `client-id`,
/// a null name being the default entity.
fn entity_of(
    parts: impl Iterator<Item = (String, Option<String>)>,
) -> Result<odradek_controller::QuotaEntity, String> {
    let mut entity = odradek_controller::QuotaEntity { user: None, client_id: None };
    for (kind, name) in parts {
        let slot = match kind.as_str() {
            "user" => &mut entity.user,
            "client-id" => &mut entity.client_id,
            other => return Err(format!("entity type {other:?} is not user or client-id")),
        };
        if slot.is_some() {
            return Err(format!("entity type {kind} named twice"));
        }
        *slot = Some(name);
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err("an empty entity".into());
    }
    Ok(entity)
}

fn wire_entity(
    e: &odradek_controller::QuotaEntity,
) -> Vec<kafka_protocol::messages::describe_client_quotas_response::EntityData> {
    use kafka_protocol::messages::describe_client_quotas_response::EntityData;
    let mut out = Vec::new();
    for (kind, part) in [("user", &e.user), ("client-id", &e.client_id)] {
        if let Some(name) = part {
            out.push(
                EntityData::default()
                    .with_entity_type(str_bytes(kind))
                    .with_entity_name(name.as_deref().map(str_bytes)),
            );
        }
    }
    out
}

pub fn describe_quotas(
    ctx: &Shard,
    req: &kafka_protocol::messages::DescribeClientQuotasRequest,
) -> kafka_protocol::messages::DescribeClientQuotasResponse {
    use kafka_protocol::messages::DescribeClientQuotasResponse;
    use kafka_protocol::messages::describe_client_quotas_response::{EntryData, ValueData};
    let invalid = |message: &str| {
        DescribeClientQuotasResponse::default()
            .with_error_code(ec::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(message)))
    };
    // (kind, match): match None = the default entity, Some(None) = any, Some(Some(n)) = n.
    let mut wanted: Vec<(&str, Option<Option<String>>)> = Vec::new();
    for c in &req.components {
        let kind = match c.entity_type.as_str() {
            k @ ("user" | "client-id") => k,
            other => return invalid(&format!("entity type {other:?} is not user or client-id")),
        };
        let matcher = match (c.match_type, &c._match) {
            (0, Some(name)) => Some(Some(name.to_string())),
            (1, _) => None,
            (2, _) => Some(None),
            _ => {
                return invalid(
                    "match type must be 0 (exact, with a name), 1 (default) or 2 (any)",
                );
            }
        };
        if wanted.iter().any(|(k, _)| *k == kind) {
            return invalid(&format!("entity type {kind} given twice"));
        }
        wanted.push((kind, matcher));
    }
    let snapshot = ctx.metadata.snapshot();
    let entries = snapshot
        .security
        .quotas
        .iter()
        .filter(|q| {
            let part =
                |kind: &str| if kind == "user" { &q.entity.user } else { &q.entity.client_id };
            let matches = wanted.iter().all(|(kind, m)| match (part(kind), m) {
                (None, _) => false,
                (Some(name), Some(Some(want))) => name.as_deref() == Some(want.as_str()),
                (Some(name), None) => name.is_none(),
                (Some(_), Some(None)) => true,
            });
            let parts =
                usize::from(q.entity.user.is_some()) + usize::from(q.entity.client_id.is_some());
            matches && (!req.strict || parts == wanted.len())
        })
        .map(|q| {
            let values = q
                .values
                .iter()
                .filter_map(|(k, v)| {
                    Some(ValueData::default().with_key(str_bytes(k)).with_value(v.parse().ok()?))
                })
                .collect();
            EntryData::default().with_entity(wire_entity(&q.entity)).with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub async fn alter_quotas(
    ctx: &Shard,
    req: &kafka_protocol::messages::AlterClientQuotasRequest,
) -> kafka_protocol::messages::AlterClientQuotasResponse {
    use kafka_protocol::messages::AlterClientQuotasResponse;
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    use odradek_controller::image::security::QUOTA_KEYS;
    let mut results = Vec::with_capacity(req.entries.len());
    let mut changes = Vec::new();
    let mut slots = Vec::new();
    for (i, e) in req.entries.iter().enumerate() {
        let wire: Vec<EntityData> = e
            .entity
            .iter()
            .map(|d| {
                EntityData::default()
                    .with_entity_type(d.entity_type.clone())
                    .with_entity_name(d.entity_name.clone())
            })
            .collect();
        results.push(EntryData::default().with_entity(wire));
        let parts = e
            .entity
            .iter()
            .map(|d| (d.entity_type.to_string(), d.entity_name.as_ref().map(|n| n.to_string())));
        let checked = entity_of(parts).and_then(|entity| {
            let mut ops = Vec::new();
            for op in &e.ops {
                if !QUOTA_KEYS.contains(&op.key.as_str()) {
                    return Err(format!(
                        "quota key {:?} is not one of {QUOTA_KEYS:?}",
                        op.key.as_str()
                    ));
                }
                if op.remove {
                    ops.push((op.key.to_string(), None));
                } else if op.value.is_finite() && op.value > 0.0 {
                    ops.push((op.key.to_string(), Some(op.value.to_string())));
                } else {
                    return Err(format!(
                        "{} = {} is not a positive number",
                        op.key.as_str(),
                        op.value
                    ));
                }
            }
            Ok((entity, ops))
        });
        match checked {
            Ok(change) => {
                changes.push(change);
                slots.push(i);
            }
            Err(message) => {
                results[i].error_code = ec::INVALID_REQUEST.code();
                results[i].error_message = Some(str_bytes(&message));
            }
        }
    }
    if !req.validate_only
        && !changes.is_empty()
        && let Err(e) = propose_visible(ctx, Command::AlterQuotas { entries: changes }).await
    {
        for i in slots {
            (results[i].error_code, results[i].error_message) = error_of(&e);
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}
