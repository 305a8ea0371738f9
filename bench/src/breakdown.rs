//! Where the broker spent a request's time, when it says: Odradek returns each Produce's and
//! Fetch's stage times in a tagged field of the response (`odradek_client::stages`). Other
//! brokers send none, and then the report has no breakdown.

use std::collections::BTreeMap;

use bytes::Bytes;
use hdrhistogram::Histogram;
use odradek_client::stages::{self, Kind, STAGES_TAG, Stage};
use serde::{Deserialize, Serialize};

use crate::latency::new_histogram;

/// Stage histograms (µs) of the responses one worker read after the warm-up.
#[derive(Debug, Default)]
pub struct Breakdown {
    stages: BTreeMap<(u8, Stage), Histogram<u64>>,
}

impl Breakdown {
    /// Records the breakdown a response carries, if it carries one.
    pub fn record(&mut self, tagged: &BTreeMap<i32, Bytes>) {
        let Some((kind, times)) = tagged.get(&STAGES_TAG).and_then(|v| stages::decode(v)) else {
            return;
        };
        for (stage, us) in times {
            self.stages
                .entry((kind as u8, stage))
                .or_insert_with(new_histogram)
                .saturating_record(us);
        }
    }

    pub fn merge(&mut self, other: Breakdown) {
        for (key, h) in other.stages {
            match self.stages.get_mut(&key) {
                // Same bounds everywhere: adding cannot fail.
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => {
                    self.stages.insert(key, h);
                }
            }
        }
    }

    /// The figures per request kind ("produce", "fetch"), stages in the order they happen.
    pub fn figures(&self) -> BTreeMap<String, Vec<StageFigures>> {
        let mut out = BTreeMap::new();
        for (kind, name) in [(Kind::Produce, "produce"), (Kind::Fetch, "fetch")] {
            let rows: Vec<StageFigures> = Stage::of(kind)
                .iter()
                .filter_map(|&stage| {
                    let h = self.stages.get(&(kind as u8, stage))?;
                    Some(StageFigures {
                        stage: stage.name().to_owned(),
                        count: h.len(),
                        mean_us: h.mean(),
                        p50_us: h.value_at_quantile(0.5),
                        p99_us: h.value_at_quantile(0.99),
                        max_us: h.max(),
                    })
                })
                .collect();
            if !rows.is_empty() {
                out.insert(name.to_owned(), rows);
            }
        }
        out
    }
}

/// One stage's times over a run's responses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageFigures {
    pub stage: String,
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_without_the_field_adds_nothing() {
        let mut b = Breakdown::default();
        b.record(&BTreeMap::new());
        b.record(&BTreeMap::from([(STAGES_TAG, Bytes::from_static(b"junk"))]));
        assert!(b.figures().is_empty());
    }

    #[test]
    fn stages_are_kept_per_kind_in_their_order() {
        let mut b = Breakdown::default();
        for us in [100, 300] {
            let v = stages::encode(Kind::Produce, &[(Stage::Write, us), (Stage::Receive, 5)]);
            b.record(&BTreeMap::from([(STAGES_TAG, v)]));
        }
        let mut other = Breakdown::default();
        let v = stages::encode(Kind::Fetch, &[(Stage::Wait, 7)]);
        other.record(&BTreeMap::from([(STAGES_TAG, v)]));
        b.merge(other);
        let f = b.figures();
        let produce: Vec<&str> = f["produce"].iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(produce, ["receive", "write"]);
        assert_eq!(f["produce"][1].count, 2);
        assert_eq!(f["produce"][1].max_us, 300);
        assert_eq!(f["fetch"][0].p50_us, 7);
    }
}
