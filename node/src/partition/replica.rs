//! What a partition's leader knows of its replicas (Kafka's ISR protocol, leader side): each
//! follower's log end offset as its fetches report it, when it was last caught up, the ISR
//! the controller committed and an ISR change under way. Pure bookkeeping, no I/O: the
//! partition feeds it fetches and the clock, and asks it for the high watermark and for ISR
//! changes to propose.
//!
//! **Invariants.**
//! - The high watermark it proposes is the lowest log end offset among the ISR (and the
//!   replicas being added to it), the leader's own included; a member whose log end is not
//!   known yet (no fetch since this leadership began) holds it back.
//! - A shrink is only proposed, never applied here: until the controller commits it, the
//!   larger committed ISR keeps counting for the high watermark (Kafka's "maximal ISR").
//! - One ISR change is in flight at a time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One follower, as its fetches show it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Its log end offset (its last fetch offset); `None` until it fetches in this leadership.
    log_end: Option<u64>,
    /// When it last fetched, and the leader's log end offset then.
    last_fetch: Instant,
    leader_end_at_last_fetch: u64,
    /// When it last had everything the leader had (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up: Instant,
}

/// The leader's view of a partition's replicas.
#[derive(Debug, Clone)]
pub struct Replicas {
    me: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    partition_epoch: i32,
    /// The ISR proposed to the controller and not yet seen committed.
    pending: Option<Vec<i32>>,
    followers: HashMap<i32, Follower>,
    /// The log end offset when this leadership began: a follower must reach it to join the
    /// ISR (it then has every record of earlier epochs the leader has).
    epoch_start: u64,
}

impl Replicas {
    /// A new leadership: followers are not known yet, and count as caught up now (Kafka gives
    /// each a full `replica.lag.time.max.ms` to fetch).
    pub fn new(
        me: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
        epoch_start: u64,
    ) -> Self {
        let now = Instant::now();
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|&r| {
                let f = Follower {
                    log_end: None,
                    last_fetch: now,
                    leader_end_at_last_fetch: 0,
                    last_caught_up: now,
                };
                (r, f)
            })
            .collect();
        Self {
            me,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            partition_epoch,
            pending: None,
            followers,
            epoch_start,
        }
    }

    /// The controller's record changed (same leadership): new replicas (a reassignment), a
    /// committed ISR. An ISR change in flight is over once the partition epoch moved.
    pub fn update(&mut self, replicas: &[i32], isr: &[i32], partition_epoch: i32) {
        if partition_epoch != self.partition_epoch {
            self.pending = None;
        }
        let now = Instant::now();
        for &r in replicas.iter().filter(|r| **r != self.me) {
            self.followers.entry(r).or_insert(Follower {
                log_end: None,
                last_fetch: now,
                leader_end_at_last_fetch: 0,
                last_caught_up: now,
            });
        }
        self.followers.retain(|r, _| replicas.contains(r));
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn is_replica(&self, id: i32) -> bool {
        self.replicas.contains(&id)
    }

    /// The members whose log end bounds the high watermark: the committed ISR plus any replica
    /// a pending change adds (never fewer than committed).
    fn members(&self) -> impl Iterator<Item = i32> + '_ {
        let added = self.pending.iter().flatten().filter(|r| !self.isr.contains(r));
        self.isr.iter().chain(added).copied()
    }

    /// The high watermark the members allow, given the leader's log end offset; `None` while a
    /// member's log end is unknown.
    pub fn high_watermark(&self, leader_end: u64) -> Option<u64> {
        let mut hw = leader_end;
        for r in self.members().filter(|r| *r != self.me) {
            hw = hw.min(self.followers.get(&r)?.log_end?);
        }
        Some(hw)
    }

    /// A follower fetched from `offset` (so it has everything below it) while the leader's log
    /// ends at `leader_end`.
    pub fn on_fetch(&mut self, replica: i32, offset: u64, leader_end: u64, now: Instant) {
        let Some(f) = self.followers.get_mut(&replica) else { return };
        if offset >= leader_end {
            f.last_caught_up = now;
        } else if offset >= f.leader_end_at_last_fetch {
            // It has what the leader had at its previous fetch: caught up as of then.
            f.last_caught_up = f.last_caught_up.max(f.last_fetch);
        }
        f.log_end = Some(offset);
        f.last_fetch = now;
        f.leader_end_at_last_fetch = leader_end;
    }

    /// The ISR to propose if `replica` has caught up and is not in it: it has reached the
    /// high watermark and this leadership's start.
    pub fn expansion(&self, replica: i32, high_watermark: u64) -> Option<Vec<i32>> {
        if self.pending.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let end = self.followers.get(&replica)?.log_end?;
        if end < high_watermark || end < self.epoch_start {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(replica);
        Some(isr)
    }

    /// The ISR to propose without the followers that have not caught up for `lag_max`.
    pub fn shrink(&self, lag_max: Duration, now: Instant) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            *r != self.me
                && self
                    .followers
                    .get(r)
                    .is_none_or(|f| now.saturating_duration_since(f.last_caught_up) > lag_max)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(self.isr.iter().copied().filter(|r| !lagging(r)).collect())
    }

    /// Marks `isr` as proposed (nothing else is proposed until it is settled).
    pub fn propose(&mut self, isr: Vec<i32>) {
        self.pending = Some(isr);
    }

    /// The proposal failed or was answered: another may be made.
    pub fn settle(&mut self) {
        self.pending = None;
    }

    /// How far behind each follower is (the leader's log end minus its own; unknown: all).
    pub fn lag(&self, leader_end: u64) -> Vec<(i32, u64)> {
        let mut out: Vec<(i32, u64)> = self
            .followers
            .iter()
            .map(|(r, f)| (*r, leader_end.saturating_sub(f.log_end.unwrap_or(0))))
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_watermark_is_the_lowest_isr_log_end_and_waits_for_unknown_members() {
        let mut r = Replicas::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0);
        let now = Instant::now();
        assert_eq!(r.high_watermark(10), None, "followers not heard from yet");
        r.on_fetch(2, 7, 10, now);
        assert_eq!(r.high_watermark(10), None);
        r.on_fetch(3, 9, 10, now);
        assert_eq!(r.high_watermark(10), Some(7));
        // A follower out of the ISR does not hold it back.
        r.update(&[1, 2, 3], &[1, 3], 1);
        assert_eq!(r.high_watermark(10), Some(9));
        // One being added does, as soon as it is proposed.
        r.propose(vec![1, 3, 2]);
        assert_eq!(r.high_watermark(10), Some(7));
    }

    #[test]
    fn lagging_followers_are_shrunk_and_caught_up_ones_added() {
        let start = Instant::now();
        let mut r = Replicas::new(1, &[1, 2, 3], &[1, 2, 3], 0, 5);
        r.on_fetch(3, 4, 10, start);
        r.on_fetch(2, 10, 10, start + Duration::from_millis(1500));
        let lag = Duration::from_secs(1);
        let later = start + Duration::from_secs(2);
        // 3 was last caught up when the leadership began; 2 half a second ago.
        assert_eq!(r.shrink(lag, later), Some(vec![1, 2]));
        r.on_fetch(2, 12, 12, later);
        assert_eq!(r.shrink(lag, later), Some(vec![1, 2]));
        r.propose(vec![1, 2]);
        assert_eq!(r.shrink(lag, later), None, "one change at a time");
        r.update(&[1, 2, 3], &[1, 2], 1);
        // 3 rejoins only at the high watermark and past this leadership's start.
        r.on_fetch(3, 4, 12, later);
        assert_eq!(r.expansion(3, 4), None, "below the leadership's start");
        r.on_fetch(3, 11, 12, later);
        assert_eq!(r.expansion(3, 12), None, "below the high watermark");
        r.on_fetch(3, 12, 12, later);
        assert_eq!(r.expansion(3, 12), Some(vec![1, 2, 3]));
        assert_eq!(r.expansion(2, 12), None, "already in");
    }

    #[test]
    fn a_follower_behind_only_by_what_arrived_since_its_last_fetch_is_caught_up() {
        let start = Instant::now();
        let mut r = Replicas::new(1, &[1, 2], &[1, 2], 0, 0);
        r.on_fetch(2, 10, 10, start);
        // Every fetch reaches what the leader had at the one before, never the current end.
        for i in 1..=5u64 {
            let t = start + Duration::from_millis(600 * i);
            r.on_fetch(2, 10 + 5 * (i - 1), 10 + 5 * i, t);
        }
        let t = start + Duration::from_millis(3100);
        assert_eq!(r.shrink(Duration::from_secs(1), t), None);
    }
}
