//! The ACL authorizer's compiled view: the cluster's bindings indexed by resource type and
//! name, built once per metadata change, shared read-only by every shard (one atomic load
//! with the catalogue). A check walks the few bindings that can apply, compares borrowed
//! strings, and allocates nothing.

use std::collections::{BTreeSet, HashMap};

use odradek_controller::AclBinding;
use odradek_controller::image::security::{operation as op, pattern, permission, resource};

/// One binding's subject and verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: String,
    operation: i8,
    allow: bool,
}

/// The bindings of one resource type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ByName {
    literal: HashMap<String, Vec<Entry>>,
    /// LITERAL `*`: every resource of the type.
    wildcard: Vec<Entry>,
    prefixed: Vec<(String, Vec<Entry>)>,
}

/// The compiled ACLs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Acls {
    /// Index `resource_type - TOPIC` (topic, group, cluster, transactional id, token, user).
    types: [ByName; 6],
    /// The bindings compiled, to tell whether a new image changed them.
    pub source: BTreeSet<AclBinding>,
}

/// Who asks: the principal (`User:alice`) and the client's IP as text.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

impl Entry {
    fn applies(&self, who: Subject<'_>) -> bool {
        (self.principal == who.principal || self.principal == "User:*")
            && (self.host == "*" || self.host == who.host)
    }
}

/// Whether a binding for `granted` allows `asked` (Kafka: ALL covers everything; READ, WRITE,
/// DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
fn implies(granted: i8, asked: i8) -> bool {
    granted == asked
        || granted == op::ALL
        || (asked == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (asked == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

impl Acls {
    pub fn compile(bindings: &BTreeSet<AclBinding>) -> Self {
        let mut acls = Acls { source: bindings.clone(), ..Acls::default() };
        for b in bindings {
            let Some(by) = usize::try_from(b.resource_type - resource::TOPIC)
                .ok()
                .and_then(|i| acls.types.get_mut(i))
            else {
                continue;
            };
            let entry = Entry {
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation,
                allow: b.permission == permission::ALLOW,
            };
            match b.pattern_type {
                pattern::LITERAL if b.resource_name == "*" => by.wildcard.push(entry),
                pattern::LITERAL => {
                    by.literal.entry(b.resource_name.clone()).or_default().push(entry)
                }
                pattern::PREFIXED => {
                    match by.prefixed.iter_mut().find(|(p, _)| *p == b.resource_name) {
                        Some((_, entries)) => entries.push(entry),
                        None => by.prefixed.push((b.resource_name.clone(), vec![entry])),
                    }
                }
                _ => {}
            }
        }
        acls
    }

    fn entries<'a>(&'a self, resource_type: i8, name: &'a str) -> impl Iterator<Item = &'a Entry> {
        let by =
            usize::try_from(resource_type - resource::TOPIC).ok().and_then(|i| self.types.get(i));
        by.into_iter().flat_map(move |by| {
            let literal = by.literal.get(name).into_iter().flatten();
            let prefixed = by
                .prefixed
                .iter()
                .filter(move |(p, _)| name.starts_with(p.as_str()))
                .flat_map(|(_, e)| e);
            literal.chain(by.wildcard.iter()).chain(prefixed)
        })
    }

    /// Kafka's verdict for `who` doing `operation` on the resource: any matching DENY refuses;
    /// else a matching ALLOW (or an implying one) allows; a resource no binding names is
    /// allowed only with `allow_if_none` (`allow.everyone.if.no.acl.found`).
    pub fn allows(
        &self,
        who: Subject<'_>,
        resource_type: i8,
        name: &str,
        operation: i8,
        allow_if_none: bool,
    ) -> bool {
        let mut any = false;
        let mut allowed = false;
        for e in self.entries(resource_type, name) {
            any = true;
            if !e.applies(who) {
                continue;
            }
            if !e.allow && (e.operation == operation || e.operation == op::ALL) {
                return false;
            }
            if e.allow && implies(e.operation, operation) {
                allowed = true;
            }
        }
        allowed || (!any && allow_if_none)
    }

    /// Whether `who` is allowed `operation` on at least one resource of the type (Kafka lets
    /// an idempotent producer in with WRITE on any topic).
    pub fn allows_any(&self, who: Subject<'_>, resource_type: i8, operation: i8) -> bool {
        let Some(by) =
            usize::try_from(resource_type - resource::TOPIC).ok().and_then(|i| self.types.get(i))
        else {
            return false;
        };
        let all = by
            .literal
            .values()
            .flatten()
            .chain(by.wildcard.iter())
            .chain(by.prefixed.iter().flat_map(|(_, e)| e));
        let mut allowed = false;
        for e in all.filter(|e| e.applies(who)) {
            if e.allow && implies(e.operation, operation) {
                allowed = true;
            }
        }
        // A wildcard DENY for the principal shuts out every resource.
        allowed
            && !by.wildcard.iter().any(|e| {
                e.applies(who) && !e.allow && (e.operation == operation || e.operation == op::ALL)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rt: i8, name: &str, pt: i8, who: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    #[test]
    fn deny_wins_prefixes_match_and_describe_is_implied() {
        let set: BTreeSet<AclBinding> = [
            b(resource::TOPIC, "orders", pattern::LITERAL, "User:bob", op::READ, permission::ALLOW),
            b(resource::TOPIC, "pay", pattern::PREFIXED, "User:bob", op::WRITE, permission::ALLOW),
            b(resource::TOPIC, "payroll", pattern::LITERAL, "User:bob", op::ALL, permission::DENY),
            b(resource::GROUP, "*", pattern::LITERAL, "User:*", op::READ, permission::ALLOW),
        ]
        .into_iter()
        .collect();
        let acls = Acls::compile(&set);
        let bob = Subject { principal: "User:bob", host: "10.0.0.1" };
        let eve = Subject { principal: "User:eve", host: "10.0.0.1" };
        assert!(acls.allows(bob, resource::TOPIC, "orders", op::READ, false));
        assert!(acls.allows(bob, resource::TOPIC, "orders", op::DESCRIBE, false), "implied");
        assert!(!acls.allows(bob, resource::TOPIC, "orders", op::WRITE, false));
        assert!(acls.allows(bob, resource::TOPIC, "payments", op::WRITE, false), "prefixed");
        assert!(!acls.allows(bob, resource::TOPIC, "payroll", op::WRITE, false), "deny wins");
        assert!(!acls.allows(eve, resource::TOPIC, "orders", op::READ, true), "named: no default");
        assert!(acls.allows(eve, resource::TOPIC, "unnamed", op::READ, true), "no ACL found");
        assert!(!acls.allows(eve, resource::TOPIC, "unnamed", op::READ, false));
        assert!(acls.allows(eve, resource::GROUP, "g", op::READ, false), "wildcard principal");
        assert!(acls.allows_any(bob, resource::TOPIC, op::WRITE));
        assert!(!acls.allows_any(eve, resource::TOPIC, op::WRITE));
    }
}
