//! Time, pacing and latency recording, with an injectable clock so they can be tested.
//!
//! Open loop: the [`Pacer`] gives record `i` the *intended* send time `start + i / rate`; the
//! latency recorded is acknowledgement time minus intended time, so a broker that stalls shows
//! the stall in every record that should have been sent during it (coordinated-omission
//! correction, as the OpenMessaging Benchmark does). Closed loop: the record's time is when it
//! was created.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold (1 h in µs); larger values are clamped to it.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant digits of every latency histogram.
pub const SIGFIG: u8 = 3;

/// A new latency histogram: 1 µs to [`LATENCY_MAX_US`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Microseconds since the UNIX epoch, advancing monotonically: a wall-clock anchor plus a
/// monotonic elapsed time, so producer-embedded timestamps can be compared with the consumer's
/// clock in the same process (and roughly across processes on one host).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_wall_us: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Clock { anchor: Instant::now(), anchor_wall_us: wall.as_micros() as u64 }
    }

    pub fn now_us(&self) -> u64 {
        self.anchor_wall_us + self.anchor.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Intended send times of an open-loop producer: record `i` is due at `start + i * 1e6 / rate`.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_us: u64,
    rate_per_s: f64,
    next: u64,
}

impl Pacer {
    /// A pacer at `rate_per_s` records per second (must be > 0) whose first record is due at
    /// `start_us`.
    pub fn new(start_us: u64, rate_per_s: f64) -> Pacer {
        assert!(rate_per_s > 0.0, "pacer rate must be positive");
        Pacer { start_us, rate_per_s, next: 0 }
    }

    /// Intended send time of record `i`.
    pub fn intended_us(&self, i: u64) -> u64 {
        self.start_us + (i as f64 * 1e6 / self.rate_per_s) as u64
    }

    /// Intended time of the next record not yet taken.
    pub fn next_due_us(&self) -> u64 {
        self.intended_us(self.next)
    }

    /// Records due at `now_us` and not yet taken.
    pub fn due(&self, now_us: u64) -> u64 {
        if now_us < self.start_us {
            return 0;
        }
        let total = ((now_us - self.start_us) as f64 * self.rate_per_s / 1e6) as u64 + 1;
        total.saturating_sub(self.next)
    }

    /// Takes the next record: returns its intended send time.
    pub fn take(&mut self) -> u64 {
        let t = self.intended_us(self.next);
        self.next += 1;
        t
    }

    /// Records taken so far.
    #[cfg(test)]
    pub fn taken(&self) -> u64 {
        self.next
    }
}

/// Records latencies (µs) of records acknowledged after the warm-up.
#[derive(Debug)]
pub struct Recorder {
    pub hist: Histogram<u64>,
    warmup_end_us: u64,
}

impl Recorder {
    pub fn new(warmup_end_us: u64) -> Recorder {
        Recorder { hist: new_histogram(), warmup_end_us }
    }

    /// Records the latency of a record stamped `stamp_us` (intended or creation time) observed
    /// at `now_us`. Returns false (nothing recorded) during the warm-up.
    pub fn record(&mut self, stamp_us: u64, now_us: u64) -> bool {
        if now_us < self.warmup_end_us {
            return false;
        }
        self.hist.saturating_record(now_us.saturating_sub(stamp_us).max(1));
        true
    }

    pub fn in_warmup(&self, now_us: u64) -> bool {
        now_us < self.warmup_end_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_records_evenly_and_counts_what_is_due() {
        let mut p = Pacer::new(1_000, 1000.0); // one record per ms
        assert_eq!(p.due(999), 0);
        assert_eq!(p.due(1_000), 1);
        assert_eq!(p.due(10_999), 10);
        assert_eq!(p.take(), 1_000);
        assert_eq!(p.take(), 2_000);
        assert_eq!(p.due(10_999), 8);
        assert_eq!(p.next_due_us(), 3_000);
        assert_eq!(p.intended_us(1_000), 1_001_000);
        let fast = Pacer::new(0, 2_000_000.0);
        assert_eq!(fast.due(1_000_000), 2_000_001);
    }

    /// A closed pipeline of one request in flight, paced at `rate` for `n` records, against a
    /// broker that answers in 100 µs except for one stall of `stall_us` starting at `stall_at`.
    /// Returns (corrected, uncorrected) histograms.
    fn simulate(
        rate: f64,
        n: u64,
        stall_at: u64,
        stall_us: u64,
    ) -> (Histogram<u64>, Histogram<u64>) {
        let mut pacer = Pacer::new(0, rate);
        let mut corrected = Recorder::new(0);
        let mut uncorrected = Recorder::new(0);
        let mut broker_free_at = 0u64; // the client can send when the previous ack arrived
        let mut stalled = false;
        while pacer.taken() < n {
            let intended = pacer.take();
            let sent = intended.max(broker_free_at);
            let mut ack = sent + 100;
            if !stalled && sent >= stall_at {
                stalled = true;
                ack += stall_us;
            }
            broker_free_at = ack;
            corrected.record(intended, ack);
            uncorrected.record(sent, ack);
        }
        (corrected.hist, uncorrected.hist)
    }

    #[test]
    fn a_stalled_broker_shows_in_the_corrected_percentiles_only() {
        // 1000 records/s for 10 s; the broker stalls 1 s at t = 5 s.
        let (c, u) = simulate(1000.0, 10_000, 5_000_000, 1_000_000);
        assert_eq!(c.len(), 10_000);
        // ~1000 of 10000 records were due during the stall: ≥ 10 % see up to a second.
        assert!(c.value_at_quantile(0.5) < 1_000, "p50 {}", c.value_at_quantile(0.5));
        assert!(c.value_at_quantile(0.99) > 800_000, "p99 {}", c.value_at_quantile(0.99));
        assert!(c.value_at_quantile(0.999) > 980_000);
        assert!(c.max() >= 1_000_000);
        // Without the correction the stall is one record: only the max shows it.
        assert!(u.value_at_quantile(0.99) < 1_000, "uncorrected p99 {}", u.value_at_quantile(0.99));
        assert!(u.value_at_quantile(0.999) < 1_000);
        assert!(u.max() >= 1_000_000);
    }

    #[test]
    fn a_healthy_broker_gives_the_same_percentiles_both_ways() {
        let (c, u) = simulate(1000.0, 5_000, u64::MAX, 0);
        assert_eq!(c.value_at_quantile(0.99), u.value_at_quantile(0.99));
        assert_eq!(c.max(), 100);
    }

    #[test]
    fn warmup_records_are_not_recorded_and_huge_values_are_clamped() {
        let mut r = Recorder::new(1_000);
        assert!(!r.record(0, 999));
        assert!(r.record(0, 1_500));
        assert!(r.record(0, u64::MAX));
        assert_eq!(r.hist.len(), 2);
        assert!(r.hist.max() >= LATENCY_MAX_US - LATENCY_MAX_US / 1000);
    }
}
