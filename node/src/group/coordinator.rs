//! A coordinator's decisions, on the shard that coordinates the group: whether a JoinGroup is
//! admitted (and as which member), whether a member or a committer is current, and waiting for
//! a group to change. Kafka's rules, with no wire types: the `api` room translates.

use std::time::{Duration, Instant};

use bytes::Bytes;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;

use super::GroupHost;
use super::state::{Group, Member, State};
use super::store::{delete_offsets, store_group};

/// How often waiting requests re-check their group, besides being woken on each change.
pub const RECHECK: Duration = Duration::from_millis(100);

/// A JoinGroup, as the coordinator sees it.
#[derive(Debug, Clone)]
pub struct Join {
    /// The member id the client sent ("" for a new member).
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    /// Kafka's form: "/" and the client's address.
    pub client_host: String,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED with its id.
    pub member_id_required: bool,
}

/// What a JoinGroup leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A member of the next generation: wait for it to form (a generation after `before`).
    Joined { member_id: String, before: i32 },
    /// A static member's quick rejoin of a stable group: answered with the current generation
    /// and no rebalance, once its new member id is stored.
    Rejoined { member_id: String, generation: i32, protocol: String, leader: String },
    /// Refused with `code`; `member_id` is given back where Kafka gives it.
    Refused { code: ErrorCode, member_id: Option<String> },
}

/// A new member id: `<instance id or client id>-<32 hex digits>`.
fn new_member_id(base: &str) -> String {
    format!("{base}-{}", uuid::Uuid::from_u128(rand::random::<u128>()).simple())
}

/// Admits `join` to `g` (Kafka's rules): protocol checks, static-member replacement, member
/// ids, then the member joins the next generation.
pub fn admit(g: &mut Group, mut join: Join, now: Instant, initial_delay: Duration) -> Admission {
    let refused = |code, member_id| Admission::Refused { code, member_id };
    if g.state != State::Empty
        && g.protocol_type.as_deref().is_some_and(|t| t != join.protocol_type)
        || !g.members.is_empty()
            && !g.members.values().next().is_some_and(|m| {
                m.protocols.iter().any(|(n, _)| join.protocols.iter().any(|(p, _)| p == n))
            })
    {
        return refused(ec::INCONSISTENT_GROUP_PROTOCOL, None);
    }
    // Static members: a known instance id with a new member id replaces the old member.
    if let Some(inst) = join.instance_id.clone()
        && let Some(old) = g.static_member(&inst)
    {
        if !join.member_id.is_empty() && join.member_id != old {
            return refused(ec::FENCED_INSTANCE_ID, None);
        }
        if join.member_id.is_empty() {
            join.member_id = new_member_id(&inst);
            replace_static(g, &old, &join.member_id, now);
            if g.state == State::Stable {
                // Stored by the caller before it answers, not by the ticker.
                g.store_pending = false;
                return Admission::Rejoined {
                    member_id: join.member_id,
                    generation: g.generation,
                    protocol: g.protocol.clone().unwrap_or_default(),
                    leader: g.leader.clone().unwrap_or_default(),
                };
            }
        }
    }
    if join.member_id.is_empty() {
        // Kafka's form: a static member's id starts with its instance id, a dynamic one's
        // with its client id (what `join_strings_fit` checks the length of).
        join.member_id = new_member_id(join.instance_id.as_deref().unwrap_or(&join.client_id));
        if join.member_id_required && join.instance_id.is_none() {
            g.pending.insert(join.member_id.clone(), now);
            return refused(ec::MEMBER_ID_REQUIRED, Some(join.member_id));
        }
    } else if !g.members.contains_key(&join.member_id) && !g.pending.contains_key(&join.member_id) {
        return refused(ec::UNKNOWN_MEMBER_ID, Some(join.member_id));
    }
    if g.members.is_empty() {
        g.protocol_type = Some(join.protocol_type.clone());
    }
    let member_id = join.member_id.clone();
    // The generation before this join: the answer is the first one formed after it (this join
    // may complete the phase itself, bumping the generation right here).
    let before = g.generation;
    g.join(member(g, join, now), now, initial_delay);
    Admission::Joined { member_id, before }
}

fn member(g: &Group, join: Join, now: Instant) -> Member {
    let assignment = g.members.get(&join.member_id).map(|m| m.assignment.clone());
    Member {
        id: join.member_id,
        instance_id: join.instance_id,
        client_id: join.client_id,
        client_host: join.client_host,
        session_timeout: join.session_timeout,
        rebalance_timeout: join.rebalance_timeout,
        protocols: join.protocols,
        assignment: assignment.unwrap_or_default(),
        last_seen: now,
        awaiting_join: false,
    }
}

/// A static member's new id replaces its old one (and its leadership); the group must be
/// stored before the member is answered.
fn replace_static(g: &mut Group, old: &str, new: &str, now: Instant) {
    if let Some(mut m) = g.members.remove(old) {
        m.id = new.to_owned();
        m.last_seen = now;
        g.members.insert(new.to_owned(), m);
        if g.leader.as_deref() == Some(old) {
            g.leader = Some(new.to_owned());
        }
    }
    g.store_pending = true;
}

/// Checks a member and generation of a group: the group, or the error code.
pub fn check_member<'a>(
    g: Option<&'a mut Group>,
    member_id: &str,
    generation: i32,
) -> Result<&'a mut Group, ErrorCode> {
    let g = g.ok_or(ec::UNKNOWN_MEMBER_ID)?;
    if !g.members.contains_key(member_id) {
        return Err(ec::UNKNOWN_MEMBER_ID);
    }
    if generation != g.generation {
        return Err(ec::ILLEGAL_GENERATION);
    }
    Ok(g)
}

/// Whether `member` of `generation` may commit for `group`. A consumer outside any generation
/// (-1, no member id) may commit only to a group without members.
pub fn check_committer(
    host: &impl GroupHost,
    group: &str,
    member: &str,
    generation: i32,
) -> Result<(), ErrorCode> {
    let mut groups = host.groups().borrow_mut();
    let g = groups.membership.get_mut(group);
    if generation < 0 && member.is_empty() {
        return match g {
            Some(g) if !g.members.is_empty() => Err(ec::ILLEGAL_GENERATION),
            _ => Ok(()),
        };
    }
    let g = check_member(g, member, generation)?;
    // As Kafka: members of the current generation may commit while the group prepares a
    // rebalance (before they rejoin), not while the leader is computing the assignment.
    match g.state {
        State::CompletingRebalance => Err(ec::REBALANCE_IN_PROGRESS),
        _ => Ok(()),
    }
}

/// Waits until `done` says something about the group (or `limit` passes: `None`).
pub async fn wait_for<T>(
    host: &impl GroupHost,
    group: &str,
    limit: Duration,
    mut done: impl FnMut(Option<&mut Group>) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        let listener = {
            let mut groups = host.groups().borrow_mut();
            let g = groups.membership.get_mut(group);
            let listener = g.as_ref().map(|g| g.changed.listen());
            if let Some(answer) = done(g) {
                return Some(answer);
            }
            listener
        };
        if Instant::now() >= deadline {
            return None;
        }
        let timer = std::pin::pin!(compio::time::sleep(RECHECK));
        match listener {
            Some(l) => {
                let _ = futures_util::future::select(l, timer).await;
            }
            None => timer.await,
        }
    }
}

/// A member's share of a generation, with the group's protocol type and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub assignment: Bytes,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
}

/// What a SyncGroup found: the member's assignment, or, for the leader of a generation, that
/// the assignment it brought must be stored first.
enum Synced {
    Assigned(Assigned),
    Store,
}

/// SyncGroup: the leader's call hands out `assignments` (stored before anyone gets theirs, as
/// Kafka does); every member waits for the generation to become stable and gets its share.
pub async fn sync(
    host: &impl GroupHost,
    group: &str,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
) -> Result<Assigned, ErrorCode> {
    let limit = host
        .groups()
        .borrow()
        .membership
        .get(group)
        .and_then(|gr| gr.members.get(member).map(|m| m.rebalance_timeout))
        .unwrap_or_default()
        + Duration::from_secs(5);
    let mut leader_done = false;
    let synced = wait_for(host, group, limit, |gr| {
        let gr = match check_member(gr, member, generation) {
            Ok(gr) => gr,
            Err(code) => return Some(Err(code)),
        };
        match gr.state {
            State::PreparingRebalance | State::Empty => Some(Err(ec::REBALANCE_IN_PROGRESS)),
            State::CompletingRebalance if gr.leader.as_deref() == Some(member) && !leader_done => {
                leader_done = true;
                for (id, a) in &assignments {
                    if let Some(m) = gr.members.get_mut(id) {
                        m.assignment = a.clone();
                    }
                }
                Some(Ok(Synced::Store))
            }
            State::CompletingRebalance => None,
            State::Stable => {
                let m = gr.members.get_mut(member)?;
                m.last_seen = Instant::now();
                Some(Ok(Synced::Assigned(Assigned {
                    assignment: m.assignment.clone(),
                    protocol_type: gr.protocol_type.clone(),
                    protocol: gr.protocol.clone(),
                })))
            }
        }
    })
    .await
    .unwrap_or(Err(ec::REBALANCE_IN_PROGRESS))?;
    match synced {
        Synced::Assigned(assigned) => Ok(assigned),
        // As Kafka: the generation's assignment is stored before anyone gets theirs.
        Synced::Store => store_assignment(host, group, member, generation).await,
    }
}

/// The leader's SyncGroup: stores the generation's assignment, then makes the group stable
/// (a failed store starts a new rebalance instead).
async fn store_assignment(
    host: &impl GroupHost,
    group: &str,
    member: &str,
    generation: i32,
) -> Result<Assigned, ErrorCode> {
    let stored = store_group(host, group).await;
    let mut groups = host.groups().borrow_mut();
    let gr = check_member(groups.membership.get_mut(group), member, generation)?;
    if gr.state != State::CompletingRebalance {
        return Err(ec::REBALANCE_IN_PROGRESS);
    }
    if let Err(code) = stored {
        for m in gr.members.values_mut() {
            m.assignment = Bytes::new();
        }
        gr.prepare_rebalance(Instant::now(), host.group_settings().initial_rebalance_delay);
        return Err(code);
    }
    gr.state = State::Stable;
    gr.changed.notify(usize::MAX);
    let own = gr.members.get(member).map(|m| m.assignment.clone()).unwrap_or_default();
    Ok(Assigned {
        assignment: own,
        protocol_type: gr.protocol_type.clone(),
        protocol: gr.protocol.clone(),
    })
}

/// LeaveGroup: each `(member id, instance id)` leaves (a static member may be named by its
/// instance id alone); each gets `NONE` or `UNKNOWN_MEMBER_ID`. A group the leave changed is
/// stored before the answer (on failure the ticker tries again).
pub async fn leave(
    host: &impl GroupHost,
    group: &str,
    leaving: Vec<(String, Option<String>)>,
) -> Vec<(String, Option<String>, ErrorCode)> {
    let delay = host.group_settings().initial_rebalance_delay;
    let (results, store) = {
        let mut groups = host.groups().borrow_mut();
        let Some(g) = groups.membership.get_mut(group) else {
            return leaving.into_iter().map(|(m, i)| (m, i, ec::UNKNOWN_MEMBER_ID)).collect();
        };
        let results = leaving
            .into_iter()
            .map(|(member, instance)| {
                let id = match (&instance, member.is_empty()) {
                    (Some(inst), true) => g.static_member(inst).unwrap_or_default(),
                    _ => member.clone(),
                };
                let code = if g.remove(&id, Instant::now(), delay) {
                    ec::NONE
                } else {
                    ec::UNKNOWN_MEMBER_ID
                };
                tracing::info!(group, member = %id, %code, "member left");
                (member, instance, code)
            })
            .collect::<Vec<_>>();
        (results, std::mem::take(&mut g.store_pending))
    };
    if store
        && store_group(host, group).await.is_err()
        && let Some(g) = host.groups().borrow_mut().membership.get_mut(group)
    {
        g.store_pending = true;
    }
    results
}

/// DeleteGroups for one group, on its coordinator with its partition loaded: a group with
/// members is `NON_EMPTY_GROUP`, an unknown one `GROUP_ID_NOT_FOUND`; otherwise its offsets'
/// tombstones and its metadata's tombstone are written (fsynced) and it is forgotten.
pub async fn delete_group(
    host: &impl GroupHost,
    partition: i32,
    group: &str,
) -> Result<(), ErrorCode> {
    let (known, keys) = {
        let groups = host.groups().borrow();
        let known = match groups.membership.get(group) {
            Some(gr) if !gr.members.is_empty() => return Err(ec::NON_EMPTY_GROUP),
            Some(_) => true,
            None => false,
        };
        let keys: Vec<(String, i32)> =
            groups.offsets.all(group).into_iter().map(|(t, p, _)| (t, p)).collect();
        (known, keys)
    };
    if !known && keys.is_empty() {
        return Err(ec::GROUP_ID_NOT_FOUND);
    }
    delete_offsets(host, partition, group, keys).await?;
    // A member may have joined while the tombstones were written: then the group stays.
    let removed = {
        let mut groups = host.groups().borrow_mut();
        match groups.membership.get(group) {
            Some(gr) if !gr.members.is_empty() => return Err(ec::NON_EMPTY_GROUP),
            _ => groups.membership.remove(group).is_some(),
        }
    };
    if removed { store_group(host, group).await } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(member_id: &str, instance: Option<&str>) -> Join {
        Join {
            member_id: member_id.to_owned(),
            instance_id: instance.map(str::to_owned),
            client_id: "c".to_owned(),
            client_host: "/10.0.0.7".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocols: vec![("range".to_owned(), Bytes::from_static(b"m"))],
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            member_id_required: true,
        }
    }

    #[test]
    fn a_new_dynamic_member_first_gets_its_id_then_joins_with_it() {
        let mut g = Group::default();
        let now = Instant::now();
        let Admission::Refused { code, member_id: Some(id) } =
            admit(&mut g, join("", None), now, Duration::ZERO)
        else {
            panic!("a v4+ dynamic member first gets MEMBER_ID_REQUIRED");
        };
        assert_eq!(code, ec::MEMBER_ID_REQUIRED);
        assert!(id.starts_with("c-"), "{id}");
        let joined = admit(&mut g, join(&id, None), now, Duration::ZERO);
        assert_eq!(joined, Admission::Joined { member_id: id.clone(), before: 0 });
        assert_eq!(g.members.get(&id).map(|m| m.client_host.as_str()), Some("/10.0.0.7"));
        let unknown = admit(&mut g, join("nobody", None), now, Duration::ZERO);
        assert_eq!(
            unknown,
            Admission::Refused { code: ec::UNKNOWN_MEMBER_ID, member_id: Some("nobody".into()) }
        );
    }

    #[test]
    fn protocols_must_overlap_and_static_ids_are_fenced() {
        let mut g = Group::default();
        let now = Instant::now();
        let Admission::Joined { member_id, .. } =
            admit(&mut g, join("", Some("i1")), now, Duration::ZERO)
        else {
            panic!("a static member joins at once");
        };
        let mut other = join("", None);
        other.protocols = vec![("roundrobin".to_owned(), Bytes::new())];
        let refused = admit(&mut g, other, now, Duration::ZERO);
        assert_eq!(
            refused,
            Admission::Refused { code: ec::INCONSISTENT_GROUP_PROTOCOL, member_id: None }
        );
        let stale = admit(&mut g, join("i1-old", Some("i1")), now, Duration::ZERO);
        assert_eq!(stale, Admission::Refused { code: ec::FENCED_INSTANCE_ID, member_id: None });
        assert!(g.members.contains_key(&member_id), "the current static member stays");
    }

    #[test]
    fn entries_that_never_formed_a_generation_are_forgotten() {
        let mut groups = crate::group::Coordinated::default();
        let now = Instant::now();
        for name in ["asked-for-an-id", "joined"] {
            let g = groups.membership.entry(name.to_owned()).or_default();
            let Admission::Refused { member_id: Some(id), .. } =
                admit(g, join("", None), now, Duration::ZERO)
            else {
                panic!("MEMBER_ID_REQUIRED first");
            };
            if name == "joined" {
                admit(g, join(&id, None), now, Duration::ZERO);
            }
        }
        groups.membership.insert("nothing".to_owned(), Group::default());
        groups.forget_unformed();
        let left: Vec<&String> = groups.membership.keys().collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!groups.membership.contains_key("nothing"));
        // Once the pending id expires, the entry that never joined goes too.
        if let Some(g) = groups.membership.get_mut("asked-for-an-id") {
            g.pending.clear();
        }
        groups.forget_unformed();
        assert!(groups.membership.contains_key("joined"), "a group with a member stays");
        assert!(!groups.membership.contains_key("asked-for-an-id"));
    }
}
