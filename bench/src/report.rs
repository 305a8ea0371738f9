//! Results: the JSON summary (read back by `plot` and `compare`), the human table, HdrHistogram's
//! `.hgrm` percentile-distribution text, the SVG percentile plot, and comparisons.
//!
//! Latencies are recorded in µs; tables, `.hgrm` files and plots show milliseconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::breakdown::StageFigures;
use crate::latency::new_histogram;
use crate::load::{LoadArgs, Workload};

/// Percentiles every report shows, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] =
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)];

/// Throughput of one side (produce or consume).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Side {
    /// Records acknowledged (produce) or received (consume), warm-up included.
    pub records: u64,
    /// Records after the warm-up, the ones the rates count.
    pub measured_records: u64,
    /// Seconds from the end of the warm-up to the last acknowledgement or receipt.
    pub seconds: f64,
    /// Payload (key + value) bytes of the measured records.
    pub measured_bytes: u64,
    /// Records that failed (produce error codes) or partition errors (fetch).
    pub errors: u64,
}

impl Side {
    pub fn records_per_s(&self) -> f64 {
        self.measured_records as f64 / self.seconds
    }

    pub fn mb_per_s(&self) -> f64 {
        self.measured_bytes as f64 / self.seconds / 1e6
    }
}

/// A latency histogram: its percentiles (µs) and, to redraw it, its recorded values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub percentiles_us: BTreeMap<String, u64>,
    pub max_us: u64,
    /// (value µs, count) of every recorded bucket: the whole histogram.
    pub values: Vec<(u64, u64)>,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            percentiles_us: PERCENTILES
                .iter()
                .map(|(l, q)| ((*l).to_owned(), h.value_at_quantile(*q)))
                .collect(),
            max_us: h.max(),
            values: h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    /// Rebuilds the histogram from its recorded values.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for &(v, c) in &self.values {
            h.saturating_record_n(v, c);
        }
        h
    }
}

/// The JSON summary of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub tool: String,
    pub version: String,
    pub label: String,
    pub workload: String,
    /// Seconds since the UNIX epoch at the end of the run.
    pub finished_at: u64,
    pub config: serde_json::Value,
    pub produce: Option<Side>,
    pub consume: Option<Side>,
    /// "produce" (send → acknowledgement) and "e2e" (embedded timestamp → receipt).
    pub latency: BTreeMap<String, Latency>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// The broker's own stage times ("produce", "fetch"), when it reports them (Odradek).
    #[serde(default)]
    pub breakdown: BTreeMap<String, Vec<StageFigures>>,
}

impl Summary {
    pub fn new(
        workload: Workload,
        args: &LoadArgs,
        produce: Option<Side>,
        consume: Option<Side>,
        hists: BTreeMap<String, Histogram<u64>>,
    ) -> Summary {
        let w = serde_json::to_value(workload)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Summary {
            tool: "odradek-bench".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            label: args.label.clone().unwrap_or_else(|| format!("{w} {}", args.brokers)),
            workload: w,
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            config: serde_json::to_value(args).unwrap_or(serde_json::Value::Null),
            produce,
            consume,
            latency: hists.iter().map(|(k, h)| (k.clone(), Latency::from_histogram(h))).collect(),
            notes: Vec::new(),
            breakdown: BTreeMap::new(),
        }
    }

    pub fn read(path: &Path) -> Result<Summary> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an odradek-bench summary", path.display()))
    }

    /// Writes the JSON summary to `path` and each histogram's `.hgrm` next to it
    /// (`out.json` → `out.produce.hgrm`, `out.e2e.hgrm`).
    pub fn write(&self, path: &Path) -> Result<Vec<std::path::PathBuf>> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        let mut written = vec![path.to_owned()];
        for (name, lat) in &self.latency {
            let p = path.with_extension(format!("{name}.hgrm"));
            std::fs::write(&p, hgrm(&lat.histogram()))
                .with_context(|| format!("writing {}", p.display()))?;
            written.push(p);
        }
        Ok(written)
    }

    /// Every figure of the summary by name, for `compare`.
    pub fn figures(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (name, side) in [("produce", &self.produce), ("consume", &self.consume)] {
            if let Some(s) = side {
                out.push((format!("{name} rec/s"), s.records_per_s()));
                out.push((format!("{name} MB/s"), s.mb_per_s()));
                out.push((format!("{name} errors"), s.errors as f64));
            }
        }
        for (name, lat) in &self.latency {
            for (label, _) in PERCENTILES {
                let v = lat.percentiles_us.get(label).copied().unwrap_or(0);
                out.push((format!("{name} latency {label} ms"), v as f64 / 1e3));
            }
            out.push((format!("{name} latency max ms"), lat.max_us as f64 / 1e3));
        }
        out
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} ({})", self.label, self.workload);
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>12} {:>10} {:>8} {:>8}",
            "", "records", "rec/s", "MB/s", "errors", "secs"
        );
        for (name, side) in [("produce", &self.produce), ("consume", &self.consume)] {
            if let Some(x) = side {
                let _ = writeln!(
                    s,
                    "{name:<10} {:>12} {:>12.0} {:>10.2} {:>8} {:>8.2}",
                    x.measured_records,
                    x.records_per_s(),
                    x.mb_per_s(),
                    x.errors,
                    x.seconds
                );
            }
        }
        if !self.latency.is_empty() {
            let _ = write!(s, "{:<10} {:>10}", "latency", "count");
            for (l, _) in PERCENTILES {
                let _ = write!(s, " {l:>9}");
            }
            let _ = writeln!(s, " {:>9}", "max");
            for (name, lat) in &self.latency {
                let _ = write!(s, "{name:<10} {:>10}", lat.count);
                for (l, _) in PERCENTILES {
                    let _ = write!(
                        s,
                        " {:>9}",
                        fmt_us(lat.percentiles_us.get(l).copied().unwrap_or(0))
                    );
                }
                let _ = writeln!(s, " {:>9}", fmt_us(lat.max_us));
            }
        }
        for (kind, rows) in &self.breakdown {
            let _ = writeln!(
                s,
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9}",
                format!("{kind} (broker)"),
                "responses",
                "mean",
                "p50",
                "p99",
                "max"
            );
            for r in rows {
                let _ = writeln!(
                    s,
                    "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    r.stage,
                    r.count,
                    fmt_us(r.mean_us.round() as u64),
                    fmt_us(r.p50_us),
                    fmt_us(r.p99_us),
                    fmt_us(r.max_us)
                );
            }
        }
        if !self.breakdown.is_empty() {
            let _ = writeln!(
                s,
                "(broker: its own stage times per response, from Odradek's tagged field; a request waits for its slowest partition)"
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// A latency for people: µs below 1 ms, then ms.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 { format!("{us}µs") } else { format!("{:.2}ms", us as f64 / 1e3) }
}

/// HdrHistogram's percentile distribution text (as `outputPercentileDistribution` prints it,
/// 5 ticks per half distance), values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let ms = v.value_iterated_to() as f64 / 1e3;
            if q < 1.0 {
                let _ = writeln!(s, "{ms:>12.3} {q:>14.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(s, "{ms:>12.3} {q:>14.12} {total:>10}");
            }
        }
    }
    let (mean, sd) = if h.is_empty() { (0.0, 0.0) } else { (h.mean() / 1e3, h.stdev() / 1e3) };
    let _ = writeln!(s, "#[Mean    = {mean:>12.3}, StdDeviation   = {sd:>12.3}]");
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1e3,
        h.len()
    );
    let _ = writeln!(s, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), SUB_BUCKETS);
    s
}

/// Sub-buckets per bucket at 3 significant digits (2^ceil(log2(2 × 10^3))).
const SUB_BUCKETS: u32 = 2048;

const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
/// Nines on the x axis: 0 %, 90 %, ..., 99.9999 %.
const X_NINES: f64 = 6.0;

/// The usual HdrHistogram percentile plot: x is 1/(1-p) on a log scale (labelled 0 %, 90 %,
/// 99 %, ...), y the latency in ms; one line per (label, histogram).
pub fn svg(title: &str, runs: &[(String, Histogram<u64>)]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 520.0, 70.0, 20.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_ms = runs.iter().map(|(_, hist)| hist.max() as f64 / 1e3).fold(0.0f64, f64::max);
    let y_max = nice_ceiling(max_ms.max(0.001) * 1.05);
    let x = |nines: f64| left + pw * (nines / X_NINES).clamp(0.0, 1.0);
    let y = |ms: f64| top + ph * (1.0 - (ms / y_max).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        xml(title)
    );
    for i in 0..=X_NINES as usize {
        let px = x(i as f64);
        let label = match i {
            0 => "0%".to_owned(),
            1 => "90%".to_owned(),
            n => format!("99.{}%", "9".repeat(n - 2)).replace("99.%", "99%"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="#ddd"/>"##,
            top + ph
        );
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            top + ph + 18.0
        );
    }
    for i in 0..=5 {
        let ms = y_max * f64::from(i) / 5.0;
        let py = y(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/>"##,
            left + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            py + 4.0,
            trim_float(ms)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">latency (ms)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (i, (label, hist)) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points = String::new();
        if !hist.is_empty() {
            for v in hist.iter_quantiles(10) {
                let q = v.quantile_iterated_to();
                let nines = if q >= 1.0 { X_NINES } else { (1.0 / (1.0 - q)).log10() };
                let _ = write!(
                    points,
                    "{:.1},{:.1} ",
                    x(nines.min(X_NINES)),
                    y(v.value_iterated_to() as f64 / 1e3)
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.trim_end()
        );
        let ly = top + 18.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/>"#,
            left + 12.0,
            left + 36.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, left + 42.0, ly + 4.0, xml(label));
    }
    s.push_str("</svg>\n");
    s
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|c| *c >= v).unwrap_or(10.0 * p)
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `plot`: one line per (summary, histogram) of the given summaries.
pub fn plot(
    files: &[std::path::PathBuf],
    which: Option<&str>,
    title: &str,
    out: &Path,
) -> Result<()> {
    let mut runs = Vec::new();
    for f in files {
        let s = Summary::read(f)?;
        for (name, lat) in &s.latency {
            if which.is_none_or(|w| w == name) {
                runs.push((format!("{} — {name}", s.label), lat.histogram()));
            }
        }
    }
    if runs.is_empty() {
        bail!("no latency histogram to plot in the given files");
    }
    std::fs::write(out, svg(title, &runs)).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `compare`: every figure of `a` and `b` and the ratio b/a.
pub fn compare(a: &Summary, b: &Summary) -> String {
    let mut s = String::new();
    let fb: BTreeMap<String, f64> = b.figures().into_iter().collect();
    let _ = writeln!(s, "a: {}\nb: {}", a.label, b.label);
    let _ = writeln!(s, "{:<28} {:>14} {:>14} {:>8}", "figure", "a", "b", "b/a");
    for (name, va) in a.figures() {
        let Some(&vb) = fb.get(&name) else { continue };
        let ratio = if va == 0.0 { "-".to_owned() } else { format!("{:.3}", vb / va) };
        let _ = writeln!(s, "{name:<28} {va:>14.3} {vb:>14.3} {ratio:>8}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).expect("in range");
        }
        h
    }

    fn summary(label: &str, rate_records: u64, lat: &[u64]) -> Summary {
        let mut hists = BTreeMap::new();
        hists.insert("produce".to_owned(), hist(lat));
        let args = <crate::Cli as clap::Parser>::try_parse_from(["odradek-bench", "produce"])
            .expect("defaults");
        let crate::Command::Produce(args) = args.command else { panic!("produce") };
        let side = Side {
            records: rate_records,
            measured_records: rate_records,
            seconds: 1.0,
            measured_bytes: rate_records * 100,
            errors: 0,
        };
        let mut s = Summary::new(Workload::Produce, &args, Some(side), None, hists);
        s.label = label.to_owned();
        s
    }

    #[test]
    fn summaries_round_trip_through_json_with_their_histograms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = summary("a", 1000, &[100, 200, 300, 5000]);
        let written = s.write(&dir.path().join("run.json")).expect("write");
        assert_eq!(written.len(), 2);
        assert!(written[1].ends_with("run.produce.hgrm"));
        let back = Summary::read(&written[0]).expect("read");
        let (h1, h2) = (s.latency["produce"].histogram(), back.latency["produce"].histogram());
        assert_eq!(h1, h2);
        assert_eq!(back.latency["produce"].percentiles_us["p50"], 200);
        assert_eq!(back.produce, s.produce);
    }

    #[test]
    fn hgrm_has_the_standard_columns_and_ends_at_the_total() {
        let h = hist(&(1..=1000).collect::<Vec<_>>());
        let text = hgrm(&h);
        let first = text.lines().next().expect("header");
        assert!(
            first.contains("Value") && first.contains("Percentile") && first.contains("TotalCount")
        );
        assert!(first.contains("1/(1-Percentile)"));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(rows.len() > 20);
        let last = rows.last().expect("rows");
        assert_eq!(last[0], "1.000"); // 1000 µs = 1 ms
        assert_eq!(last[2], "1000");
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
        // Percentiles never decrease.
        let qs: Vec<f64> = rows.iter().map(|r| r[1].parse().expect("number")).collect();
        assert!(qs.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn svg_draws_one_line_per_run_with_a_legend() {
        let runs = vec![
            ("odradek".to_owned(), hist(&[100, 200, 900])),
            ("tansu <mem>".to_owned(), hist(&[300, 400])),
        ];
        let s = svg("p & q", &runs);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("tansu &lt;mem&gt;") && s.contains("p &amp; q"));
        for label in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"] {
            assert!(s.contains(&format!(">{label}</text>")), "{label}");
        }
    }

    #[test]
    fn compare_prints_ratios_of_every_figure() {
        let a = summary("a", 1000, &[1000, 1000]);
        let b = summary("b", 2000, &[2000, 2000]);
        let text = compare(&a, &b);
        let line = |name: &str| text.lines().find(|l| l.starts_with(name)).expect(name).to_owned();
        assert!(line("produce rec/s").ends_with("2.000"), "{text}");
        assert!(line("produce MB/s").ends_with("2.000"));
        assert!(line("produce latency p50 ms").ends_with("2.000"));
        assert!(line("produce errors").ends_with('-'));
    }
}
