//! The security part of the metadata: ACL bindings (Kafka's `AccessControlEntryRecord`) and
//! SCRAM credentials (`UserScramCredentialRecord`). Codes are Kafka's wire codes, so a binding
//! round-trips through CreateAcls/DescribeAcls unchanged.

use serde::{Deserialize, Serialize};

use super::{CommandError, CommandReply, CommandResult, MetadataImage};

/// Kafka's `ResourceType` codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// Most ACL bindings a cluster holds, and most one CreateAcls adds.
pub const ACLS_MAX: usize = 100_000;
/// Longest resource name, principal or host of a binding.
pub const ACL_FIELD_BYTES_MAX: usize = 1024;
/// Most users with SCRAM credentials.
pub const SCRAM_USERS_MAX: usize = 100_000;
/// Kafka's bounds on SCRAM iterations (KIP-554).
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
pub const SCRAM_ITERATIONS_MAX: u32 = 16384;

/// One ACL: `principal` from `host` is `permission`ed `operation` on the resources the
/// (type, name, pattern) names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why this binding cannot be stored (Kafka's CreateAcls checks), if it cannot.
    pub fn invalid(&self) -> Option<String> {
        use {operation as op, pattern as pt, resource as rt};
        if !(rt::TOPIC..=rt::USER).contains(&self.resource_type) {
            return Some(format!("resource type {} is not a concrete type", self.resource_type));
        }
        if !matches!(self.pattern_type, pt::LITERAL | pt::PREFIXED) {
            return Some(format!("pattern type {} is not LITERAL or PREFIXED", self.pattern_type));
        }
        if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Some(format!("operation {} is not a concrete operation", self.operation));
        }
        if !matches!(self.permission, permission::ALLOW | permission::DENY) {
            return Some(format!("permission {} is not ALLOW or DENY", self.permission));
        }
        if self.resource_name.is_empty() {
            return Some("the resource name is empty".into());
        }
        if self.resource_type == rt::CLUSTER && self.resource_name != "kafka-cluster" {
            return Some("the cluster resource is named `kafka-cluster`".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Some(format!("principal `{}` is not Type:name", self.principal)),
        }
        if self.host.is_empty() {
            return Some("the host is empty (`*` is any host)".into());
        }
        let long = [&self.resource_name, &self.principal, &self.host]
            .iter()
            .any(|f| f.len() > ACL_FIELD_BYTES_MAX);
        long.then(|| format!("a field is longer than {ACL_FIELD_BYTES_MAX} bytes"))
    }
}

/// A DescribeAcls/DeleteAcls filter: `None` and the ANY codes match every value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Whether `b` is selected, as Kafka's `AclBindingFilter.matches`: a MATCH pattern
    /// selects the bindings that would apply to the named resource (literal equal or `*`,
    /// prefixed ones the name starts with).
    pub fn matches(&self, b: &AclBinding) -> bool {
        let any_or = |filter: i8, any: i8, value: i8| filter == any || filter == value;
        if !any_or(self.resource_type, resource::ANY, b.resource_type)
            || !any_or(self.operation, operation::ANY, b.operation)
            || !any_or(self.permission, permission::ANY, b.permission)
        {
            return false;
        }
        if self.principal.as_ref().is_some_and(|p| *p != b.principal)
            || self.host.as_ref().is_some_and(|h| *h != b.host)
        {
            return false;
        }
        match (self.pattern_type, &self.resource_name) {
            (pattern::MATCH, Some(name)) => match b.pattern_type {
                pattern::LITERAL => b.resource_name == *name || b.resource_name == "*",
                pattern::PREFIXED => name.starts_with(&b.resource_name),
                _ => false,
            },
            (pattern::MATCH, None) => true,
            (p, name) => {
                (p == pattern::ANY || p == b.pattern_type)
                    && name.as_ref().is_none_or(|n| *n == b.resource_name)
            }
        }
    }
}

/// A user's credential for one SCRAM mechanism, as RFC 5802 stores it (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// A client-quota entity (KIP-55/KIP-546): a user, a client id, or both; `Some(None)` is the
/// default entity of that kind (`<default>`), `None` leaves the kind out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

/// The quota keys Kafka's brokers enforce per client (the rest of KIP-546's keys, such as
/// `controller_mutation_rate`, are refused).
pub const QUOTA_KEYS: [&str; 3] =
    ["producer_byte_rate", "consumer_byte_rate", "request_percentage"];

/// One entity's quota changes: (key, `Some(value)` to set or `None` to remove).
pub type QuotaChange = (QuotaEntity, Vec<(String, Option<String>)>);

/// Most quota entities a cluster holds.
pub const QUOTA_ENTITIES_MAX: usize = 100_000;

/// One entity's quotas: key → value (a positive number, kept as its canonical text so that
/// the image stays comparable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    pub entity: QuotaEntity,
    pub values: std::collections::BTreeMap<String, String>,
}

/// A SCRAM mechanism's name as Kafka spells it.
pub fn scram_mechanism_valid(name: &str) -> bool {
    matches!(name, "SCRAM-SHA-256" | "SCRAM-SHA-512")
}

impl MetadataImage {
    pub(super) fn create_acls(&mut self, bindings: &[AclBinding]) -> CommandReply {
        if let Some(reason) = bindings.iter().find_map(AclBinding::invalid) {
            return Err(CommandError::InvalidAcl { reason });
        }
        if self.acls.len().saturating_add(bindings.len()) > ACLS_MAX {
            return Err(CommandError::InvalidAcl {
                reason: format!("the cluster holds at most {ACLS_MAX} ACLs"),
            });
        }
        self.acls.extend(bindings.iter().cloned());
        Ok(CommandResult::Done)
    }

    pub(super) fn delete_acls(&mut self, filters: &[AclFilter]) -> CommandReply {
        let mut matched = Vec::with_capacity(filters.len());
        for f in filters {
            let hits: Vec<AclBinding> =
                self.acls.iter().filter(|b| f.matches(b)).cloned().collect();
            matched.push(hits);
        }
        for hits in &matched {
            for b in hits {
                self.acls.remove(b);
            }
        }
        Ok(CommandResult::AclsDeleted { matched })
    }

    pub(super) fn alter_scram(
        &mut self,
        upsert: &[(String, String, ScramCredential)],
        delete: &[(String, String)],
    ) -> CommandReply {
        for (user, mechanism, c) in upsert {
            if user.is_empty() || user.len() > ACL_FIELD_BYTES_MAX {
                return Err(CommandError::InvalidScram { reason: "invalid user name".into() });
            }
            if !scram_mechanism_valid(mechanism) {
                return Err(CommandError::InvalidScram {
                    reason: format!("unknown mechanism {mechanism}"),
                });
            }
            if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&c.iterations) {
                return Err(CommandError::InvalidScram {
                    reason: format!(
                        "iterations {} outside {SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX}",
                        c.iterations
                    ),
                });
            }
            if c.salt.is_empty() || c.stored_key.is_empty() || c.server_key.is_empty() {
                return Err(CommandError::InvalidScram { reason: "empty salt or key".into() });
            }
        }
        let new_users = upsert.iter().filter(|(u, _, _)| !self.scram.contains_key(u)).count();
        if self.scram.len().saturating_add(new_users) > SCRAM_USERS_MAX {
            return Err(CommandError::InvalidScram {
                reason: format!("at most {SCRAM_USERS_MAX} SCRAM users"),
            });
        }
        for (user, mechanism) in delete {
            if let Some(m) = self.scram.get_mut(user) {
                m.remove(mechanism);
                if m.is_empty() {
                    self.scram.remove(user);
                }
            }
        }
        for (user, mechanism, c) in upsert {
            self.scram.entry(user.clone()).or_default().insert(mechanism.clone(), c.clone());
        }
        Ok(CommandResult::Done)
    }
}

impl MetadataImage {
    /// The quotas set for `entity`, if any.
    pub fn quotas_of(&self, entity: &QuotaEntity) -> Option<&QuotaRecord> {
        self.quotas.iter().find(|q| q.entity == *entity)
    }

    pub(super) fn alter_quotas(&mut self, entries: &[QuotaChange]) -> CommandReply {
        for (entity, ops) in entries {
            if entity.user.is_none() && entity.client_id.is_none() {
                return Err(CommandError::InvalidQuota { reason: "an empty entity".into() });
            }
            for (key, value) in ops {
                if !QUOTA_KEYS.contains(&key.as_str()) {
                    return Err(CommandError::InvalidQuota {
                        reason: format!("unknown key {key}"),
                    });
                }
                if let Some(v) = value
                    && !v.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
                {
                    return Err(CommandError::InvalidQuota {
                        reason: format!("{key} = {v} is not a positive number"),
                    });
                }
            }
        }
        let added = entries.iter().filter(|(e, _)| self.quotas_of(e).is_none()).count();
        if self.quotas.len().saturating_add(added) > QUOTA_ENTITIES_MAX {
            return Err(CommandError::InvalidQuota {
                reason: format!("at most {QUOTA_ENTITIES_MAX} quota entities"),
            });
        }
        for (entity, ops) in entries {
            let at = match self.quotas.binary_search_by(|q| q.entity.cmp(entity)) {
                Ok(i) => i,
                Err(i) => {
                    let values = Default::default();
                    self.quotas.insert(i, QuotaRecord { entity: entity.clone(), values });
                    i
                }
            };
            for (key, value) in ops {
                match value {
                    Some(v) => self.quotas[at].values.insert(key.clone(), v.clone()),
                    None => self.quotas[at].values.remove(key),
                };
            }
            if self.quotas[at].values.is_empty() {
                self.quotas.remove(at);
            }
        }
        Ok(CommandResult::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_set_removed_and_validated() {
        let mut image = MetadataImage::default();
        let bob = QuotaEntity { user: Some(Some("bob".into())), client_id: None };
        let set = |k: &str, v: Option<&str>| vec![(k.to_owned(), v.map(str::to_owned))];
        image
            .alter_quotas(&[(bob.clone(), set("producer_byte_rate", Some("1048576")))])
            .expect("valid");
        assert_eq!(image.quotas_of(&bob).map(|q| q.values.len()), Some(1));
        let bad = image.alter_quotas(&[(bob.clone(), set("producer_byte_rate", Some("-1")))]);
        assert!(bad.is_err());
        let unknown = image.alter_quotas(&[(bob.clone(), set("leader_rate", Some("1")))]);
        assert!(unknown.is_err());
        image.alter_quotas(&[(bob.clone(), set("producer_byte_rate", None))]).expect("removed");
        assert!(image.quotas.is_empty(), "an entity without quotas is dropped");
    }

    fn binding(name: &str, pattern_type: i8, principal: &str, op: i8) -> AclBinding {
        AclBinding {
            resource_type: resource::TOPIC,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: permission::ALLOW,
        }
    }

    #[test]
    fn acls_are_created_validated_and_deleted_by_filter() {
        let mut image = MetadataImage::default();
        let a = binding("orders", pattern::LITERAL, "User:bob", operation::READ);
        let b = binding("ord", pattern::PREFIXED, "User:bob", operation::WRITE);
        let c = binding("other", pattern::LITERAL, "User:carol", operation::READ);
        image.create_acls(&[a.clone(), b.clone(), c.clone()]).expect("valid");
        let bad = AclBinding { pattern_type: pattern::MATCH, ..a.clone() };
        let refused = image.create_acls(&[bad]).expect_err("MATCH is a filter only");
        assert!(matches!(refused, CommandError::InvalidAcl { .. }));
        assert_eq!(image.acls.len(), 3, "a refused command changes nothing");

        let filter = AclFilter {
            resource_type: resource::TOPIC,
            resource_name: Some("orders".into()),
            pattern_type: pattern::MATCH,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission: permission::ANY,
        };
        assert!(filter.matches(&a) && filter.matches(&b) && !filter.matches(&c));
        let reply = image.delete_acls(&[filter]).expect("deleted");
        let CommandResult::AclsDeleted { matched } = reply else { panic!("{reply:?}") };
        assert_eq!(matched, vec![vec![b, a]]);
        assert_eq!(image.acls.iter().collect::<Vec<_>>(), vec![&c]);
    }

    #[test]
    fn scram_credentials_are_bounded_and_replaced() {
        let mut image = MetadataImage::default();
        let cred = |iterations| ScramCredential {
            iterations,
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
        };
        let up = |it| vec![("bob".to_owned(), "SCRAM-SHA-256".to_owned(), cred(it))];
        assert!(image.alter_scram(&up(4095), &[]).is_err());
        assert!(image.alter_scram(&up(16385), &[]).is_err());
        assert!(image.scram.is_empty());
        image.alter_scram(&up(8192), &[]).expect("valid");
        assert_eq!(image.scram["bob"]["SCRAM-SHA-256"].iterations, 8192);
        image.alter_scram(&[], &[("bob".into(), "SCRAM-SHA-256".into())]).expect("deleted");
        assert!(image.scram.is_empty());
    }
}
