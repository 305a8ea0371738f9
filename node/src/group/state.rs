//! Classic consumer-group membership: the state machine of one group (Kafka's
//! `GroupMetadata` and the join/sync part of its `GroupCoordinator`), kept on the shard that
//! coordinates the group.
//!
//! States: `Empty` → `PreparingRebalance` (members (re)join) → `CompletingRebalance` (the
//! leader computes the assignment) → `Stable`; back to `PreparingRebalance` when a member
//! joins, leaves or times out. The join phase ends when every member has rejoined, or at the
//! rebalance deadline (members that did not rejoin are removed); a group that starts from
//! `Empty` waits at least `group.initial.rebalance.delay.ms` for more members. Handlers wait
//! for transitions on [`Group::changed`]; [`Group::tick`] advances timeouts.
//!
//! A group's metadata (generation, protocol, leader, members and their assignments) is stored
//! in `__consumer_offsets` when a generation's assignment is handed out, when the group turns
//! `Empty`, and when a static member is replaced; after a restart the group comes back
//! `Stable` ([`Group::restore`]) and its members go on heartbeating without a rebalance.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event;

use crate::group::records::{StoredGroup, StoredMember};

/// Group states, named as Kafka names them (ListGroups, DescribeGroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// One member.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
    /// Sent a JoinGroup for the rebalance under way.
    pub awaiting_join: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// One group.
#[derive(Debug)]
pub struct Group {
    pub state: State,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub pending: BTreeMap<String, Instant>,
    /// When the join phase ends at the latest.
    pub rebalance_deadline: Option<Instant>,
    /// A group that started from Empty waits for more members until then.
    pub join_not_before: Option<Instant>,
    /// Notified on every change; waiting handlers re-check their condition.
    pub changed: Rc<Event>,
    /// Changed in a way the stored metadata must follow (emptied, a static member replaced);
    /// the coordinator's ticker writes it.
    pub store_pending: bool,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            changed: Rc::new(Event::new()),
            store_pending: false,
        }
    }
}

impl Group {
    /// A group as stored: `Stable` with its members (each given a fresh session), or `Empty`.
    pub fn restore(stored: StoredGroup, now: Instant) -> Self {
        let ms = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        let protocol = stored.protocol;
        let members: BTreeMap<String, Member> = stored
            .members
            .into_iter()
            .map(|m| {
                let member = Member {
                    id: m.id.clone(),
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: ms(m.session_timeout_ms),
                    rebalance_timeout: ms(m.rebalance_timeout_ms),
                    protocols: protocol
                        .iter()
                        .map(|p| (p.clone(), m.subscription.clone()))
                        .collect(),
                    assignment: m.assignment,
                    last_seen: now,
                    awaiting_join: false,
                };
                (m.id, member)
            })
            .collect();
        let empty = members.is_empty();
        Self {
            state: if empty { State::Empty } else { State::Stable },
            generation: stored.generation,
            protocol_type: Some(stored.protocol_type).filter(|t| !t.is_empty()),
            protocol: if empty { None } else { protocol },
            leader: if empty { None } else { stored.leader },
            members,
            ..Self::default()
        }
    }

    /// What is stored of the group (`state_timestamp`: ms since the epoch).
    pub fn stored(&self, state_timestamp: i64) -> StoredGroup {
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let protocol = self.protocol.clone();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            leader: self.leader.clone(),
            state_timestamp,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: ms(m.rebalance_timeout),
                    session_timeout_ms: ms(m.session_timeout),
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            protocol,
        }
    }

    /// Starts (or extends) a rebalance: every member must rejoin.
    pub fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        if self.state != State::PreparingRebalance {
            if self.state == State::Empty {
                self.join_not_before = Some(now + initial_delay);
            }
            self.state = State::PreparingRebalance;
            self.rebalance_deadline = Some(now + longest);
            for m in self.members.values_mut() {
                m.awaiting_join = false;
            }
        } else if let Some(until) = self.join_not_before {
            // Each newcomer to a starting group extends the wait, within the deadline.
            let extended = (now + initial_delay).min(self.rebalance_deadline.unwrap_or(now));
            self.join_not_before = Some(until.max(extended));
        }
        self.changed.notify(usize::MAX);
    }

    /// A JoinGroup of `member` (new, or an existing one rejoining with its current
    /// protocols): starts or extends the rebalance, and counts the member as rejoined.
    pub fn join(&mut self, mut member: Member, now: Instant, initial_delay: Duration) {
        member.last_seen = now;
        member.awaiting_join = false;
        let id = member.id.clone();
        self.pending.remove(&id);
        self.members.insert(id.clone(), member);
        self.prepare_rebalance(now, initial_delay);
        if let Some(m) = self.members.get_mut(&id) {
            m.awaiting_join = true;
        }
        self.maybe_complete_join(now);
    }

    /// The protocol every member supports that most members list first among those.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let common: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| common.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        common
            .into_iter()
            .max_by_key(|n| (votes.get(n).copied().unwrap_or(0), std::cmp::Reverse(*n)))
            .cloned()
    }

    /// Ends the join phase if it may end now: removes members that did not rejoin, picks the
    /// protocol and leader and moves to the next generation.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let deadline = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !(deadline || (all_joined && delay_over)) {
            return;
        }
        for m in self.members.values().filter(|m| !m.awaiting_join) {
            // Kafka's behaviour for a member past its max.poll.interval.ms: heartbeats alone do
            // not keep it; it rejoins later under a new member id (its old one is unknown).
            tracing::info!(member = %m.id, generation = self.generation, "member did not rejoin by the rebalance deadline: removed");
        }
        self.members.retain(|_, m| m.awaiting_join);
        self.generation += 1;
        self.join_not_before = None;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.store_pending = true;
        } else {
            self.protocol = self.select_protocol();
            if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
                self.leader = self.members.keys().next().cloned();
            }
            self.state = State::CompletingRebalance;
            for m in self.members.values_mut() {
                m.awaiting_join = false;
                m.assignment = Bytes::new();
                m.last_seen = now;
            }
        }
        self.changed.notify(usize::MAX);
    }

    /// Removes a member; the others rebalance.
    pub fn remove(&mut self, member_id: &str, now: Instant, initial_delay: Duration) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        self.prepare_rebalance(now, initial_delay);
        self.maybe_complete_join(now);
        true
    }

    /// Session timeouts and deadlines; called periodically.
    pub fn tick(&mut self, now: Instant, initial_delay: Duration) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                // A member waiting in the join phase is not expired: the deadline handles it.
                !(self.state == State::PreparingRebalance && m.awaiting_join)
                    && now.duration_since(m.last_seen) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(member = %id, "group member session expired");
            self.remove(&id, now, initial_delay);
        }
        self.pending.retain(|_, at| now.duration_since(*at) < Duration::from_secs(300));
        self.maybe_complete_join(now);
    }

    /// The member id of a static member, if one has `instance_id`.
    pub fn static_member(&self, instance_id: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str], now: Instant) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocols: protocols
                .iter()
                .map(|p| ((*p).to_owned(), Bytes::from_static(b"m")))
                .collect(),
            assignment: Bytes::new(),
            last_seen: now,
            awaiting_join: true,
        }
    }

    #[test]
    fn a_group_forms_after_the_initial_delay_and_rebalances_when_a_member_leaves() {
        let t0 = Instant::now();
        let delay = Duration::from_millis(100);
        let mut g = Group::default();
        g.join(member("a", &["range", "roundrobin"], t0), t0, delay);
        assert_eq!(g.state, State::PreparingRebalance, "waits for the initial delay");
        g.join(member("b", &["roundrobin", "range"], t0), t0, delay);
        g.maybe_complete_join(t0 + delay);
        assert_eq!(g.state, State::CompletingRebalance);
        assert_eq!(g.generation, 1);
        assert_eq!(g.leader.as_deref(), Some("a"));
        assert!(g.protocol.is_some());
        g.state = State::Stable;
        assert!(g.remove("a", t0 + delay, delay));
        assert_eq!(g.state, State::PreparingRebalance, "b must rejoin");
        g.members.get_mut("b").expect("b").awaiting_join = true;
        g.maybe_complete_join(t0 + delay);
        assert_eq!(
            (g.state, g.generation, g.leader.as_deref()),
            (State::CompletingRebalance, 2, Some("b"))
        );
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_deadline_and_sessions_expire() {
        let t0 = Instant::now();
        let mut g = Group::default();
        g.join(member("a", &["range"], t0), t0, Duration::ZERO);
        assert_eq!((g.state, g.generation), (State::CompletingRebalance, 1), "alone, no delay");
        g.join(member("b", &["range"], t0), t0, Duration::ZERO);
        assert_eq!(g.state, State::PreparingRebalance, "a newcomer makes a rejoin");
        g.join(member("a", &["range"], t0), t0, Duration::ZERO);
        assert_eq!((g.state, g.generation), (State::CompletingRebalance, 2));
        g.state = State::Stable;
        // A rebalance starts (say a third member); only a rejoins.
        g.prepare_rebalance(t0, Duration::ZERO);
        g.members.get_mut("a").expect("a").awaiting_join = true;
        g.maybe_complete_join(t0 + Duration::from_secs(1));
        assert_eq!(g.state, State::PreparingRebalance, "b may still rejoin");
        g.maybe_complete_join(t0 + Duration::from_secs(31));
        assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["a"]);
        g.state = State::Stable;
        g.tick(t0 + Duration::from_secs(60), Duration::ZERO);
        assert!(g.members.is_empty(), "a's session expired");
        assert_eq!(g.state, State::Empty);
    }

    #[test]
    fn a_member_that_heartbeats_but_does_not_rejoin_is_removed_at_the_rebalance_deadline() {
        let t0 = Instant::now();
        let mut g = Group::default();
        g.join(member("a", &["range"], t0), t0, Duration::ZERO);
        g.join(member("b", &["range"], t0), t0, Duration::ZERO);
        g.members.get_mut("a").expect("a").awaiting_join = true;
        g.maybe_complete_join(t0);
        g.state = State::Stable;
        // c joins: a rejoins at once, b (stalled in its poll loop) only heartbeats.
        g.join(member("c", &["range"], t0), t0, Duration::ZERO);
        g.join(member("a", &["range"], t0), t0, Duration::ZERO);
        let rebalance_timeout = Duration::from_secs(30);
        for s in 1..30 {
            let now = t0 + Duration::from_secs(s);
            g.members.get_mut("b").expect("b heartbeats").last_seen = now;
            g.tick(now, Duration::ZERO);
            assert_eq!(g.state, State::PreparingRebalance, "b may still rejoin at {s} s");
        }
        g.tick(t0 + rebalance_timeout, Duration::ZERO);
        assert_eq!(g.state, State::CompletingRebalance, "formed without b");
        assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["a", "c"]);
        assert_eq!(g.generation, 3, "a alone, a and b, then a and c");
    }

    #[test]
    fn a_stored_group_comes_back_stable_with_its_members_and_assignments() {
        let t0 = Instant::now();
        let mut g = Group::default();
        g.join(member("a", &["range", "roundrobin"], t0), t0, Duration::ZERO);
        g.join(member("b", &["range"], t0), t0, Duration::ZERO);
        g.members.get_mut("a").expect("a").awaiting_join = true;
        g.maybe_complete_join(t0);
        assert_eq!((g.state, g.generation), (State::CompletingRebalance, 2));
        g.members.get_mut("a").expect("a").assignment = Bytes::from_static(b"pa");
        g.members.get_mut("b").expect("b").assignment = Bytes::from_static(b"pb");
        g.state = State::Stable;
        let later = t0 + Duration::from_secs(5);
        let back = Group::restore(g.stored(1), later);
        assert_eq!((back.state, back.generation), (State::Stable, 2));
        assert_eq!((back.protocol.as_deref(), back.leader.as_deref()), (Some("range"), Some("a")));
        let a = back.members.get("a").expect("a");
        assert_eq!((a.assignment.clone(), a.last_seen), (Bytes::from_static(b"pa"), later));
        assert_eq!(a.metadata_for("range"), Bytes::from_static(b"m"));
        assert_eq!(a.session_timeout, Duration::from_secs(10));
        // Emptied: stored without members, back as Empty with its generation.
        g.remove("a", later, Duration::ZERO);
        g.remove("b", later, Duration::ZERO);
        assert!(g.store_pending);
        let empty = Group::restore(g.stored(2), later);
        assert_eq!((empty.state, empty.generation, empty.members.len()), (State::Empty, 3, 0));
    }
}
