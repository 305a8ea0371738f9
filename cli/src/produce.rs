//! `odradek produce TOPIC`: each line of stdin (or `-f FILE`) becomes a record. With
//! `-H SEP` a line is `NAME=VALUE SEP NAME=VALUE SEP ... REST` (each field before the last is
//! a header); with `-k SEP` the rest is `KEY SEP VALUE` (a rest without SEP is a value with no
//! key). Records are batched per partition (up to [`BATCH_RECORDS`] or [`BATCH_BYTES`], or
//! whatever arrived within [`LINGER`]) and sent to each partition's leader.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::ProduceRequest;
use odradek_client::blocking::{Conn, Reader, Writer};
use odradek_client::cluster::Cluster;
use odradek_client::partitioner::partition_for_key;
use odradek_client::records::records::Header;
use odradek_client::records::{BatchParams, Codec, Record, build_batch};
use odradek_client::requests;
use odradek_client::routing::Retry;
use serde_json::json;

use crate::error::{CliError, Exit, Result, on};
use crate::output::{print, print_json};
use crate::session::Session;
use crate::{CLIENT_ID, Global, Output};

/// Records per batch at most.
pub const BATCH_RECORDS: usize = 1000;
/// Bytes of keys and values per batch at most (a single larger record goes alone).
pub const BATCH_BYTES: usize = 1 << 20;
/// How long a partly filled batch waits for more lines.
pub const LINGER: Duration = Duration::from_millis(20);
/// Longest line accepted.
pub const LINE_BYTES_MAX: usize = 16 << 20;
/// The Produce request's timeout.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub global: Global,
    /// The topic (it must exist).
    pub topic: String,
    /// Read lines from FILE instead of stdin.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Split each line into KEY SEP VALUE at the first SEP.
    #[arg(short = 'k', long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Each line starts with NAME=VALUE headers, each followed by SEP.
    #[arg(short = 'H', long, value_name = "SEP")]
    pub header_separator: Option<String>,
    /// Send every record to this partition (default: by key, else sticky round-robin).
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Acknowledgements: 0 (none), 1 (the leader), all (every in-sync replica).
    #[arg(short = 'a', long, default_value = "all", value_parser = ["0", "1", "all", "-1"], allow_hyphen_values = true)]
    pub acks: String,
    /// Batch compression: none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none")]
    pub compression: String,
    /// At most N records per second.
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
}

/// One record parsed from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one line (without its newline) by the separators.
///
/// # Errors
///
/// A usage error for a header field without `=`.
pub fn parse_line(line: &[u8], key_sep: Option<&[u8]>, header_sep: Option<&[u8]>) -> Result<Line> {
    let mut rest = line;
    let mut headers = Vec::new();
    if let Some(sep) = header_sep {
        while let Some(i) = find(rest, sep) {
            let field = &rest[..i];
            rest = &rest[i + sep.len()..];
            let eq = field.iter().position(|&b| b == b'=').ok_or_else(|| {
                CliError::usage(format!(
                    "header {:?} has no '=': headers are NAME=VALUE, each followed by the header separator",
                    String::from_utf8_lossy(field)
                ))
            })?;
            headers.push((field[..eq].to_vec(), field[eq + 1..].to_vec()));
        }
    }
    let (key, value) = match key_sep.and_then(|sep| find(rest, sep).map(|i| (i, sep.len()))) {
        Some((i, n)) => (Some(rest[..i].to_vec()), rest[i + n..].to_vec()),
        None => (None, rest.to_vec()),
    };
    Ok(Line { key, value, headers })
}

/// The acks flag as Kafka's number.
fn acks_of(s: &str) -> i16 {
    match s {
        "0" => 0,
        "1" => 1,
        _ => -1,
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Lines of `input` sent over a channel by a thread, so that the producer can linger.
fn spawn_reader(input: Box<dyn Read + Send>) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(4 * BATCH_RECORDS);
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, input);
        loop {
            let mut line = Vec::new();
            let limit = (LINE_BYTES_MAX + 1) as u64;
            match (&mut r).take(limit).read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    } else if line.len() > LINE_BYTES_MAX {
                        let e = std::io::Error::other(format!(
                            "a line is longer than {LINE_BYTES_MAX} bytes"
                        ));
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if tx.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Where records go and what came back.
struct Sender {
    cluster: Cluster,
    topic: String,
    acks: i16,
    codec: Codec,
    /// acks=0: a pipelined writer per leader (the broker answers nothing), the reader kept so
    /// the socket stays open.
    unacked: HashMap<String, (Writer, Reader, i16)>,
    /// Per partition: (first offset, last offset, records).
    done: BTreeMap<i32, (i64, i64, u64)>,
    sent: u64,
}

impl Sender {
    fn send(&mut self, partition: i32, records: Vec<(i64, Line)>) -> Result<()> {
        let Some(&(base_ts, _)) = records.first() else { return Ok(()) };
        let n = records.len();
        let max_ts = records.iter().map(|(ts, _)| *ts).max().unwrap_or(base_ts);
        let recs: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (ts, l))| Record {
                attributes: 0,
                timestamp_delta: ts - base_ts,
                offset_delta: i as i32,
                key: l.key.map(Bytes::from),
                value: Some(Bytes::from(l.value)),
                headers: l
                    .headers
                    .into_iter()
                    .map(|(k, v)| Header { key: Bytes::from(k), value: Some(Bytes::from(v)) })
                    .collect(),
            })
            .collect();
        let subject = format!("topic {}", self.topic);
        let params =
            BatchParams { max_timestamp: max_ts, ..BatchParams::simple(self.codec, base_ts, n) };
        let batch = build_batch(&params, &recs)
            .map_err(|e| CliError::usage(format!("{subject}: building a batch: {e}")))?;
        if self.acks == 0 {
            let addr = match self.cluster.leader_addr(partition) {
                Ok(a) => a,
                Err(_) => {
                    self.cluster.refresh().map_err(on(&subject))?;
                    self.cluster.leader_addr(partition).map_err(on(&subject))?
                }
            };
            if !self.unacked.contains_key(&addr) {
                let conn = Conn::connect_as(&addr, CLIENT_ID).map_err(on(&subject))?;
                let v = conn.versions().pick::<ProduceRequest>().map_err(on(&subject))?;
                let (w, r) = conn.split().map_err(on(&subject))?;
                self.unacked.insert(addr.clone(), (w, r, v));
            }
            let Some((w, _, v)) = self.unacked.get_mut(&addr) else { return Ok(()) };
            let req = requests::produce(
                requests::topic_name(&self.topic),
                0,
                PRODUCE_TIMEOUT_MS,
                [(partition, batch)],
            );
            w.send(*v, &req).map_err(on(&subject))?;
        } else {
            let base = self
                .cluster
                .produce(partition, self.acks, PRODUCE_TIMEOUT_MS, batch)
                .map_err(on(&subject))?;
            let last = base + n as i64 - 1;
            let e = self.done.entry(partition).or_insert((base, last, 0));
            e.0 = e.0.min(base);
            e.1 = e.1.max(last);
            e.2 += n as u64;
        }
        self.sent += n as u64;
        Ok(())
    }
}

pub(crate) fn run(args: &ProduceArgs) -> Result<Exit> {
    let codec: Codec =
        args.compression.parse().map_err(|e| CliError::usage(format!("--compression: {e}")))?;
    if args.rate == Some(0) {
        return Err(CliError::usage("--rate must be at least 1 record per second"));
    }
    let input: Box<dyn Read + Send> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("-f {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let topic = &args.topic;
    let mut s = Session::connect(&args.global)?;
    let partitions = s.partitions(topic)?;
    let count = u32::try_from(partitions.len()).unwrap_or(0);
    if count == 0 {
        return Err(CliError::kafka(format!("topic {topic}: has no partitions")));
    }
    if let Some(p) = args.partition
        && !partitions.contains(&p)
    {
        return Err(CliError::usage(format!(
            "--partition {p}: topic {topic} has partitions 0..{}",
            count - 1
        )));
    }
    let mut cluster = Cluster::new(&s.brokers, CLIENT_ID, topic, Retry::default());
    cluster.refresh().map_err(on(&format!("topic {topic}")))?;
    let mut sender = Sender {
        cluster,
        topic: topic.clone(),
        acks: acks_of(&args.acks),
        codec,
        unacked: HashMap::new(),
        done: BTreeMap::new(),
        sent: 0,
    };
    let key_sep = args.key_separator.as_deref().map(str::as_bytes);
    let header_sep = args.header_separator.as_deref().map(str::as_bytes);
    let lines = spawn_reader(input);
    let mut pending: BTreeMap<i32, Vec<(i64, Line)>> = BTreeMap::new();
    let (mut pending_records, mut pending_bytes) = (0usize, 0usize);
    let mut sticky = 0u32;
    let start = Instant::now();
    let mut read = 0u64;
    let flush = |pending: &mut BTreeMap<i32, Vec<(i64, Line)>>,
                 sender: &mut Sender,
                 sticky: &mut u32|
     -> Result<()> {
        for (p, recs) in std::mem::take(pending) {
            sender.send(p, recs)?;
        }
        *sticky = sticky.wrapping_add(1);
        Ok(())
    };
    let stop = crate::stop_flag()?;
    // Ctrl-C: send what was read, then stop.
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let next = lines.recv_timeout(LINGER);
        let line = match next {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(CliError::usage(format!("reading the input: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                flush(&mut pending, &mut sender, &mut sticky)?;
                (pending_records, pending_bytes) = (0, 0);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(read as f64 / f64::from(rate));
            let now = Instant::now();
            if due > now {
                flush(&mut pending, &mut sender, &mut sticky)?;
                (pending_records, pending_bytes) = (0, 0);
                std::thread::sleep(due - Instant::now().min(due));
            }
        }
        read += 1;
        let rec = parse_line(&line, key_sep, header_sep)?;
        let partition = match (args.partition, &rec.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partitions[partition_for_key(k, count) as usize % partitions.len()],
            (None, None) => partitions[(sticky % count) as usize],
        };
        pending_bytes += rec.value.len() + rec.key.as_ref().map_or(0, Vec::len);
        pending_records += 1;
        pending.entry(partition).or_default().push((now_ms(), rec));
        if pending_records >= BATCH_RECORDS || pending_bytes >= BATCH_BYTES {
            flush(&mut pending, &mut sender, &mut sticky)?;
            (pending_records, pending_bytes) = (0, 0);
        }
    }
    flush(&mut pending, &mut sender, &mut sticky)?;
    match args.global.output {
        Output::Table => {
            let mut text = format!("produced {} records to {topic}\n", sender.sent);
            for (p, (first, last, n)) in &sender.done {
                text.push_str(&format!(
                    "  partition {p}: {n} records at offsets {first}..={last}\n"
                ));
            }
            print(&text);
        }
        Output::Json => print_json(&json!({
            "topic": topic,
            "records": sender.sent,
            "acks": args.acks,
            "partitions": sender.done.iter().map(|(p, (first, last, n))| json!({
                "partition": p, "records": n, "first_offset": first, "last_offset": last,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_headers_key_and_value() {
        let l = parse_line(b"a=1|b=x=y|k1:v:1", Some(b":"), Some(b"|")).expect("parses");
        assert_eq!(
            l.headers,
            vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"x=y".to_vec())]
        );
        assert_eq!(l.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(l.value, b"v:1");
        let plain = parse_line(b"no key here", Some(b":"), None).expect("parses");
        assert_eq!((plain.key, plain.value), (None, b"no key here".to_vec()));
        assert!(parse_line(b"bad|v", None, Some(b"|")).is_err());
    }
}
