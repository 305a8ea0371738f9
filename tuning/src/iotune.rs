//! `odradek tune iotune`: measures the data device and keeps the result in
//! `<data_dir>/iotune.json`, which the node reads at start-up (see [`crate::autotune`]).
//!
//! Four phases share the duration: sequential 1 MiB writes through the page cache (then one
//! `fdatasync`), the same with `O_DIRECT`, 4 KiB appends each followed by `fdatasync` (the
//! latency an `acks=all` produce pays), and 4 KiB `O_DIRECT` random reads at queue depth 1.
//! Every phase is bounded in time and bytes; the scratch files are removed whatever happens.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::IoTuneError;

/// Name of the result file in the data directory.
pub const RESULT_FILE: &str = "iotune.json";
/// Format of the result file; a node refuses a file of another format.
pub const FORMAT: u32 = 1;
/// Size of one sequential write.
pub const WRITE_BYTES: usize = 1 << 20;
/// Size of one append and of one random read.
pub const BLOCK_BYTES: usize = 4096;
/// Latency samples kept per phase at most.
pub const SAMPLES_MAX: usize = 200_000;
/// Shortest and longest measurement.
pub const DURATION_MIN: Duration = Duration::from_millis(200);
pub const DURATION_MAX: Duration = Duration::from_secs(600);
/// Size of the result file a node will read.
const RESULT_BYTES_MAX: u64 = 64 * 1024;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// Total time, split evenly across the four phases.
    pub duration: Duration,
    /// Largest scratch file a write phase may grow to.
    pub file_bytes_max: u64,
}

/// What the device did; the content of `iotune.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoTune {
    pub format: u32,
    /// When it was measured (seconds since the Unix epoch).
    pub measured_at_unix_s: u64,
    pub duration_ms: u64,
    /// 1 MiB writes through the page cache, including the final fdatasync.
    pub seq_write_buffered_bytes_per_s: u64,
    /// 1 MiB `O_DIRECT` writes, including the final fdatasync; `None` where the file system
    /// has no direct I/O (tmpfs).
    pub seq_write_direct_bytes_per_s: Option<u64>,
    /// 4 KiB append + fdatasync, latency of the fdatasync.
    pub fdatasync_p50_us: u64,
    pub fdatasync_p99_us: u64,
    pub fdatasync_samples: u64,
    /// 4 KiB random reads at queue depth 1 (`O_DIRECT` when available, else through a page
    /// cache that may hold the data: then the figure is an upper bound).
    pub random_read_iops: u64,
    pub random_read_direct: bool,
}

/// Parses `30s`, `500ms`, `2m` (one number, one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{unit}` is not a unit: use ms, s or m")),
    };
    if !(DURATION_MIN..=DURATION_MAX).contains(&d) {
        return Err(format!("give a duration between {DURATION_MIN:?} and {DURATION_MAX:?}"));
    }
    Ok(d)
}

/// A 4 KiB-aligned buffer for direct I/O, without `unsafe`: an over-sized vector and the
/// aligned window inside it. The vector is never grown, so the window stays aligned.
struct Aligned {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, fill: u8) -> Self {
        let vec = vec![fill; len + BLOCK_BYTES];
        let start = (BLOCK_BYTES - vec.as_ptr() as usize % BLOCK_BYTES) % BLOCK_BYTES;
        Self { vec, start, len }
    }
    fn as_slice(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }
}

/// Scratch files of one run, removed on drop.
struct Scratch {
    paths: Vec<PathBuf>,
}

impl Scratch {
    fn path(&mut self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!(".odradek-iotune-{}-{name}", std::process::id()));
        self.paths.push(p.clone());
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn open(path: &Path, direct: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// Bytes per second of sequential `WRITE_BYTES` writes until `budget` or `bytes_max`, then
/// one fdatasync (counted). Returns `(bytes_per_s, bytes_written)`.
fn sequential_write(
    file: &File,
    buf: &[u8],
    budget: Duration,
    bytes_max: u64,
    path: &Path,
) -> Result<(u64, u64), IoTuneError> {
    let start = Instant::now();
    let mut written = 0u64;
    while start.elapsed() < budget && written + buf.len() as u64 <= bytes_max {
        file.write_all_at(buf, written).map_err(IoTuneError::io("sequential write", path))?;
        written += buf.len() as u64;
    }
    file.sync_data().map_err(IoTuneError::io("fdatasync", path))?;
    if written == 0 {
        return Err(IoTuneError::NoSamples { phase: "sequential write" });
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Ok(((written as f64 / secs) as u64, written))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Appends `BLOCK_BYTES` and fdatasyncs, over and over; returns the sorted sync latencies.
fn append_sync(
    file: &mut File,
    budget: Duration,
    path: &Path,
) -> Result<Vec<Duration>, IoTuneError> {
    let block = [0x5a_u8; BLOCK_BYTES];
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < budget && samples.len() < SAMPLES_MAX {
        file.write_all(&block).map_err(IoTuneError::io("append", path))?;
        let t = Instant::now();
        file.sync_data().map_err(IoTuneError::io("fdatasync", path))?;
        samples.push(t.elapsed());
    }
    if samples.is_empty() {
        return Err(IoTuneError::NoSamples { phase: "append + fdatasync" });
    }
    samples.sort_unstable();
    Ok(samples)
}

/// 4 KiB reads at random aligned positions below `size`, one at a time; returns reads/s.
fn random_reads(file: &File, size: u64, budget: Duration, path: &Path) -> Result<u64, IoTuneError> {
    let blocks = (size / BLOCK_BYTES as u64).max(1);
    let mut buf = Aligned::new(BLOCK_BYTES, 0);
    // xorshift64: a fixed, dependency-free sequence is random enough to defeat read-ahead.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let start = Instant::now();
    let mut reads = 0u64;
    while start.elapsed() < budget && reads < SAMPLES_MAX as u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pos = (x % blocks) * BLOCK_BYTES as u64;
        file.read_exact_at(buf.as_mut_slice(), pos)
            .map_err(IoTuneError::io("random read", path))?;
        reads += 1;
    }
    if reads == 0 {
        return Err(IoTuneError::NoSamples { phase: "random read" });
    }
    Ok((reads as f64 / start.elapsed().as_secs_f64().max(1e-9)) as u64)
}

/// Runs the four phases in `opts.data_dir` and returns what they measured. Writes nothing but
/// scratch files, which are gone when it returns.
pub fn measure(opts: &Options) -> Result<IoTune, IoTuneError> {
    let dir = &opts.data_dir;
    std::fs::create_dir_all(dir).map_err(IoTuneError::io("create dir", dir))?;
    let phase = opts.duration / 4;
    let bytes_max = opts.file_bytes_max.max(WRITE_BYTES as u64);
    let mut scratch = Scratch { paths: Vec::new() };
    let started = Instant::now();

    let path = scratch.path(dir, "buffered");
    let file = open(&path, false).map_err(IoTuneError::io("open", &path))?;
    let buf = Aligned::new(WRITE_BYTES, 0xa5);
    let (buffered, _) = sequential_write(&file, buf.as_slice(), phase, bytes_max, &path)?;
    drop(file);

    let path = scratch.path(dir, "direct");
    let (direct, read_file) = match open(&path, true) {
        Ok(file) => {
            let (bw, written) = sequential_write(&file, buf.as_slice(), phase, bytes_max, &path)?;
            (Some(bw), Some((file, written, path)))
        }
        // No direct I/O on this file system (tmpfs answers EINVAL).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (None, None),
        Err(e) => return Err(IoTuneError::io("open O_DIRECT", &path)(e)),
    };

    let path = scratch.path(dir, "append");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(IoTuneError::io("open", &path))?;
    let syncs = append_sync(&mut file, phase, &path)?;
    drop(file);

    let (iops, read_direct) = match read_file {
        Some((file, written, path)) => (random_reads(&file, written, phase, &path)?, true),
        None => {
            let path = scratch.paths[0].clone();
            let file = open(&path, false).map_err(IoTuneError::io("open", &path))?;
            let size = file.metadata().map_err(IoTuneError::io("stat", &path))?.len();
            (random_reads(&file, size, phase, &path)?, false)
        }
    };
    drop(scratch);

    Ok(IoTune {
        format: FORMAT,
        measured_at_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        duration_ms: started.elapsed().as_millis() as u64,
        seq_write_buffered_bytes_per_s: buffered,
        seq_write_direct_bytes_per_s: direct,
        fdatasync_p50_us: percentile(&syncs, 0.50).as_micros() as u64,
        fdatasync_p99_us: percentile(&syncs, 0.99).as_micros() as u64,
        fdatasync_samples: syncs.len() as u64,
        random_read_iops: iops,
        random_read_direct: read_direct,
    })
}

/// Writes `iotune.json` into `dir` (write a temporary file, fsync, rename).
pub fn save(dir: &Path, result: &IoTune) -> Result<PathBuf, IoTuneError> {
    let path = dir.join(RESULT_FILE);
    let tmp = dir.join(format!("{RESULT_FILE}.tmp"));
    let text = serde_json::to_string_pretty(result)
        .map_err(|e| IoTuneError::Parse { path: path.clone(), reason: e.to_string() })?;
    let mut file = File::create(&tmp).map_err(IoTuneError::io("create", &tmp))?;
    file.write_all(text.as_bytes()).map_err(IoTuneError::io("write", &tmp))?;
    file.sync_all().map_err(IoTuneError::io("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(IoTuneError::io("rename", &path))?;
    Ok(path)
}

/// Reads `iotune.json` from `dir`: `Ok(None)` when there is none.
pub fn load(dir: &Path) -> Result<Option<IoTune>, IoTuneError> {
    use std::io::Read;
    let path = dir.join(RESULT_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoTuneError::io("open", &path)(e)),
    };
    let mut text = String::new();
    file.take(RESULT_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(IoTuneError::io("read", &path))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| IoTuneError::Parse { path: path.clone(), reason: e.to_string() })?;
    let found = value.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
    if found != FORMAT {
        return Err(IoTuneError::Version { path, found, expected: FORMAT });
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| IoTuneError::Parse { path, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bounds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10ms").is_err(), "below the minimum");
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn a_short_measurement_yields_figures_and_leaves_only_its_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options {
            data_dir: dir.path().to_owned(),
            duration: Duration::from_millis(400),
            file_bytes_max: 8 << 20,
        };
        let r = measure(&opts).expect("measure");
        assert!(r.seq_write_buffered_bytes_per_s > 0 && r.random_read_iops > 0, "{r:?}");
        assert!(r.fdatasync_samples > 0 && r.fdatasync_p50_us <= r.fdatasync_p99_us, "{r:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert!(left.is_empty(), "scratch files removed: {left:?}");

        let path = save(dir.path(), &r).expect("save");
        assert_eq!(path, dir.path().join(RESULT_FILE));
        assert_eq!(load(dir.path()).expect("load"), Some(r));
    }

    #[test]
    fn load_tells_missing_from_garbage_and_from_another_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("none"), None);
        std::fs::write(dir.path().join(RESULT_FILE), "{not json").expect("write");
        assert!(matches!(load(dir.path()), Err(IoTuneError::Parse { .. })));
        std::fs::write(dir.path().join(RESULT_FILE), r#"{"format": 9}"#).expect("write");
        assert!(matches!(load(dir.path()), Err(IoTuneError::Version { found: 9, .. })));
        std::fs::write(dir.path().join(RESULT_FILE), r#"{"format": 1}"#).expect("write");
        assert!(matches!(load(dir.path()), Err(IoTuneError::Parse { .. })), "fields missing");
    }
}
