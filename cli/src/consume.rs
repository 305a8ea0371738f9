//! `odradek consume TOPIC`: fetches from each partition's leader and prints every record with
//! a format string (kcat's `-f`), or as JSON lines. With `-g GROUP` it is a member of the
//! consumer group (the client crate's classic member): it starts from the group's committed
//! offsets, commits what it printed every [`AUTO_COMMIT`], at a rebalance and at the end, and
//! leaves the group. SIGINT and SIGTERM end it cleanly (commit, LeaveGroup, exit 0).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use odradek_client::cluster::Cluster;
use odradek_client::group::Member;
use odradek_client::records::batch::{BatchHeader, HEADER_BYTES, TimestampType, compute_crc};
use odradek_client::records::compression::decompress;
use odradek_client::records::decoder::INFLATED_BYTES_MAX;
use odradek_client::records::records::decode_records;
use odradek_client::requests::FetchLimits;
use odradek_client::routing::{Retry, is_stale_route};
use serde_json::json;

use crate::error::{CliError, Exit, Result, on};
use crate::format::{self, Piece, RecordFields};
use crate::session::{Session, code_name};
use crate::{CLIENT_ID, Global, Output};

/// A fetch waits at most this long for records, so a signal or a heartbeat is never late by
/// more.
pub const FETCH_MAX_WAIT_MS: i32 = 500;
/// How often a group member commits what it printed.
pub const AUTO_COMMIT: Duration = Duration::from_secs(5);
const LIMITS: FetchLimits = FetchLimits {
    max_wait_ms: FETCH_MAX_WAIT_MS,
    min_bytes: 1,
    max_bytes: 16 << 20,
    partition_max_bytes: 4 << 20,
};
/// Kafka's OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub global: Global,
    /// The topic.
    pub topic: String,
    /// Where to start: start, end, OFFSET, @TIMESTAMP_MS, or -N (the last N of each
    /// partition). With -g, only for partitions where the group has no committed offset.
    #[arg(short = 'o', long = "offset", default_value = "start", allow_hyphen_values = true)]
    pub offset: String,
    /// Exit after N records.
    #[arg(short = 'n', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Consume as a member of GROUP (subscribe, commit offsets).
    #[arg(short = 'g', long)]
    pub group: Option<String>,
    /// Only these partitions (comma-separated).
    #[arg(short = 'p', long, value_delimiter = ',', conflicts_with = "group")]
    pub partitions: Vec<i32>,
    /// Format of each record: %k key, %v value, %h headers, %o offset, %p partition,
    /// %t timestamp, %T topic; \n \t escapes.
    #[arg(short = 'f', long, default_value = format::DEFAULT_FORMAT)]
    pub format: String,
    /// Exit once every partition is read to its end (the high watermark).
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    /// The last N records of each partition.
    Last(i64),
}

/// Parses `-o`.
///
/// # Errors
///
/// A usage error for anything else.
pub fn parse_start(s: &str) -> Result<Start> {
    let bad = || {
        CliError::usage(format!(
            "-o {s}: expected start, end, OFFSET, @TIMESTAMP_MS or -N (the last N records)"
        ))
    };
    Ok(match s {
        "start" | "beginning" | "earliest" => Start::Earliest,
        "end" | "latest" => Start::Latest,
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                Start::Timestamp(ts.parse().map_err(|_| bad())?)
            } else if let Some(n) = s.strip_prefix('-') {
                Start::Last(n.parse::<i64>().map_err(|_| bad())?)
            } else {
                let o: i64 = s.parse().map_err(|_| bad())?;
                Start::Offset(o)
            }
        }
    })
}

/// The start offset of each of `parts` for `start`, clamped to each partition's log.
pub(crate) fn resolve(
    cluster: &mut Cluster,
    parts: &[i32],
    start: Start,
) -> odradek_client::Result<HashMap<i32, i64>> {
    if parts.is_empty() {
        return Ok(HashMap::new());
    }
    let earliest = cluster.list_offsets(parts, -2)?;
    let latest = cluster.list_offsets(parts, -1)?;
    let at = match start {
        Start::Timestamp(ts) => Some(cluster.list_offsets(parts, ts)?),
        _ => None,
    };
    let mut out = HashMap::new();
    for &p in parts {
        let lo = earliest.get(&p).copied().unwrap_or(0);
        let hi = latest.get(&p).copied().unwrap_or(lo).max(lo);
        let o = match start {
            Start::Earliest => lo,
            Start::Latest => hi,
            Start::Offset(o) => o,
            Start::Last(n) => hi.saturating_sub(n),
            Start::Timestamp(_) => match at.as_ref().and_then(|m| m.get(&p)) {
                Some(&o) if o >= 0 => o,
                _ => hi,
            },
        };
        out.insert(p, o.clamp(lo, hi));
    }
    Ok(out)
}

/// One decoded record.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// The complete batches of a Fetch answer's record bytes: (the offset after the batch, its
/// records). A partial batch at the end is left for the next fetch.
pub(crate) fn decode(data: &Bytes) -> std::result::Result<Vec<(i64, Vec<Rec>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while data.len() - pos >= HEADER_BYTES {
        let h =
            BatchHeader::parse(&data[pos..]).map_err(|e| format!("batch at byte {pos}: {e}"))?;
        let total = h.total_len();
        if total < HEADER_BYTES {
            return Err(format!("batch at byte {pos}: length {total} is shorter than a header"));
        }
        if data.len() - pos < total {
            break;
        }
        let batch = data.slice(pos..pos + total);
        let at = pos;
        pos += total;
        if compute_crc(&batch) != h.crc {
            return Err(format!("batch at byte {at}: CRC mismatch"));
        }
        let next = h.last_offset().saturating_add(1);
        if h.is_control() {
            out.push((next, Vec::new()));
            continue;
        }
        let codec = h.codec().map_err(|e| format!("batch at byte {at}: {e}"))?;
        let section = decompress(codec, &batch[HEADER_BYTES..], INFLATED_BYTES_MAX)
            .map_err(|e| format!("batch at byte {at}: {e}"))?;
        let count = usize::try_from(h.records_count).unwrap_or(0);
        let recs = decode_records(&Bytes::from(section), count)
            .map_err(|e| format!("batch at byte {at}: {e}"))?;
        let log_append = h.timestamp_type() == TimestampType::LogAppendTime;
        let recs = recs
            .into_iter()
            .map(|r| Rec {
                offset: h.base_offset.wrapping_add(i64::from(r.offset_delta)),
                timestamp: if log_append {
                    h.max_timestamp
                } else {
                    h.base_timestamp.wrapping_add(r.timestamp_delta)
                },
                key: r.key,
                value: r.value,
                headers: r.headers.into_iter().map(|hd| (hd.key, hd.value)).collect(),
            })
            .collect();
        out.push((next, recs));
    }
    Ok(out)
}

/// Prints records to stdout, counting them.
struct Printer {
    topic: String,
    pieces: Option<Vec<Piece>>,
    out: std::io::BufWriter<std::io::Stdout>,
    buf: Vec<u8>,
    printed: u64,
}

impl Printer {
    /// Prints `r`; false if stdout is closed.
    fn print(&mut self, partition: i32, r: &Rec) -> bool {
        self.buf.clear();
        match &self.pieces {
            Some(pieces) => {
                let headers: Vec<(&[u8], Option<&[u8]>)> =
                    r.headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
                let fields = RecordFields {
                    topic: &self.topic,
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: &headers,
                };
                format::render(pieces, &fields, &mut self.buf);
            }
            None => {
                let text =
                    |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                let v = json!({
                    "topic": self.topic,
                    "partition": partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "key": text(&r.key),
                    "value": text(&r.value),
                    "headers": r.headers.iter().map(|(k, v)| json!({
                        "key": String::from_utf8_lossy(k),
                        "value": text(v),
                    })).collect::<Vec<_>>(),
                });
                self.buf.extend_from_slice(v.to_string().as_bytes());
                self.buf.push(b'\n');
            }
        }
        self.printed += 1;
        self.out.write_all(&self.buf).is_ok()
    }

    fn flush(&mut self) -> bool {
        self.out.flush().is_ok()
    }
}

/// The group side of a consume: the member and when it last committed.
struct Grouped {
    member: Member,
    name: String,
    last_commit: Instant,
}

fn warn(line: &str) {
    eprintln!("odradek: warning: {line}");
}

pub(crate) fn run(args: &ConsumeArgs) -> Result<Exit> {
    let start = parse_start(&args.offset)?;
    let pieces = match args.global.output {
        Output::Table => Some(format::parse(&args.format)?),
        Output::Json => None,
    };
    let stop = crate::stop_flag()?;
    let topic = &args.topic;
    let subject = format!("topic {topic}");
    let mut s = Session::connect(&args.global)?;
    let all = s.partitions(topic)?;
    let mut cluster = Cluster::new(&s.brokers, CLIENT_ID, topic, Retry::default());
    cluster.refresh().map_err(on(&subject))?;
    let mut group = None;
    let parts: Vec<i32> = if let Some(name) = &args.group {
        let gsubject = format!("group {name}");
        let count = i32::try_from(all.len()).unwrap_or(i32::MAX);
        let (member, assigned) =
            Member::join(&mut s.conn, name, topic, count).map_err(on(&gsubject))?;
        group = Some(Grouped { member, name: name.clone(), last_commit: Instant::now() });
        assigned
    } else if args.partitions.is_empty() {
        all.clone()
    } else {
        for p in &args.partitions {
            if !all.contains(p) {
                return Err(CliError::usage(format!(
                    "-p {p}: topic {topic} has {} partitions",
                    all.len()
                )));
            }
        }
        args.partitions.clone()
    };
    let mut positions = start_positions(&mut cluster, group.as_mut(), &parts, start, &subject)?;
    let mut printer = Printer {
        topic: topic.clone(),
        pieces,
        out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
        buf: Vec::new(),
        printed: 0,
    };
    let mut high: HashMap<i32, i64> = HashMap::new();
    let result = consume_loop(
        args,
        &stop,
        &mut cluster,
        &mut group,
        &mut positions,
        &mut printer,
        &mut high,
        start,
    );
    printer.flush();
    if let Some(mut g) = group {
        let commit: Vec<(i32, i64)> = positions.iter().map(|(&p, &o)| (p, o)).collect();
        let committed = g.member.commit(&commit);
        g.member.leave();
        if let Err(e) = committed {
            let err = CliError::client(&format!("group {}", g.name), &e);
            return Err(result.err().unwrap_or(err));
        }
    }
    result.map(|()| Exit::Ok)
}

/// Start positions of `parts`: the group's committed offsets where it has them, else `start`.
fn start_positions(
    cluster: &mut Cluster,
    group: Option<&mut Grouped>,
    parts: &[i32],
    start: Start,
    subject: &str,
) -> Result<BTreeMap<i32, i64>> {
    let committed = match group {
        Some(g) => g.member.committed(parts).map_err(on(&format!("group {}", g.name)))?,
        None => HashMap::new(),
    };
    let rest: Vec<i32> = parts.iter().copied().filter(|p| !committed.contains_key(p)).collect();
    let resolved = resolve(cluster, &rest, start).map_err(on(subject))?;
    Ok(parts
        .iter()
        .filter_map(|&p| committed.get(&p).or_else(|| resolved.get(&p)).map(|&o| (p, o)))
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn consume_loop(
    args: &ConsumeArgs,
    stop: &AtomicBool,
    cluster: &mut Cluster,
    group: &mut Option<Grouped>,
    positions: &mut BTreeMap<i32, i64>,
    printer: &mut Printer,
    high: &mut HashMap<i32, i64>,
    start: Start,
) -> Result<()> {
    let topic = args.topic.clone();
    let subject = format!("topic {topic}");
    let done = |printer: &Printer| args.count.is_some_and(|n| printer.printed >= n);
    while !stop.load(Ordering::Relaxed) && !done(printer) {
        if let Some(g) = group.as_mut() {
            let gsubject = format!("group {}", g.name);
            let rebalancing = g.member.heartbeat().map_err(on(&gsubject))?;
            if rebalancing || g.last_commit.elapsed() >= AUTO_COMMIT {
                let commit: Vec<(i32, i64)> = positions.iter().map(|(&p, &o)| (p, o)).collect();
                if let Err(e) = g.member.commit(&commit) {
                    warn(&format!("{gsubject}: commit failed: {e}"));
                }
                g.last_commit = Instant::now();
            }
            if rebalancing {
                let assigned = g.member.rejoin().map_err(on(&gsubject))?;
                *positions = start_positions(cluster, Some(g), &assigned, start, &subject)?;
                high.clear();
            }
        }
        if args.exit_at_end
            && !high.is_empty()
            && positions.iter().all(|(p, o)| high.get(p).is_some_and(|h| o >= h))
        {
            break;
        }
        if positions.is_empty() {
            // A group member with nothing assigned: wait for a rebalance.
            std::thread::sleep(Duration::from_millis(u64::from(FETCH_MAX_WAIT_MS as u32)));
            if args.exit_at_end && group.is_none() {
                break;
            }
            continue;
        }
        let by_leader = cluster.routes().by_leader(positions.keys().copied());
        if by_leader.contains_key(&None) {
            cluster.refresh().map_err(on(&subject))?;
        }
        for (addr, parts) in cluster.routes().by_leader(positions.keys().copied()) {
            let Some(addr) = addr else { continue };
            let wanted: Vec<(i32, i64)> =
                parts.iter().filter_map(|p| positions.get(p).map(|&o| (*p, o))).collect();
            let resp = match cluster.conn(&addr).and_then(|c| c.fetch(&topic, &wanted, LIMITS)) {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    cluster.forget(&addr);
                    cluster.refresh().map_err(on(&subject))?;
                    continue;
                }
                Err(e) => return Err(CliError::client(&subject, &e)),
            };
            let moved = cluster.apply_fetch_hints(&resp);
            let mut refresh = !moved.is_empty();
            for t in &resp.responses {
                for pd in &t.partitions {
                    let p = pd.partition_index;
                    let Some(&pos) = positions.get(&p) else { continue };
                    match pd.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            let o =
                                resolve(cluster, &[p], Start::Earliest).map_err(on(&subject))?;
                            let to = o.get(&p).copied().unwrap_or(0);
                            warn(&format!("{topic}/{p}: offset {pos} is out of range; from {to}"));
                            positions.insert(p, to);
                            continue;
                        }
                        c if is_stale_route(c) => {
                            refresh = true;
                            continue;
                        }
                        c => {
                            return Err(CliError::kafka(format!(
                                "{subject} partition {p}: {}: fetching at offset {pos}",
                                code_name(c)
                            )));
                        }
                    }
                    high.insert(p, pd.high_watermark);
                    let Some(data) = &pd.records else { continue };
                    let batches = decode(data).map_err(|e| {
                        CliError::kafka(format!("{subject} partition {p}: CORRUPT_MESSAGE: {e}"))
                    })?;
                    for (next, recs) in batches {
                        for r in &recs {
                            if r.offset < positions.get(&p).copied().unwrap_or(pos) {
                                continue;
                            }
                            if done(printer) {
                                break;
                            }
                            if !printer.print(p, r) {
                                stop.store(true, Ordering::Relaxed);
                                return Ok(());
                            }
                            positions.insert(p, r.offset + 1);
                        }
                        if done(printer) {
                            break;
                        }
                        let cur = positions.get(&p).copied().unwrap_or(pos);
                        positions.insert(p, cur.max(next));
                    }
                }
            }
            if !printer.flush() {
                return Ok(());
            }
            if refresh {
                cluster.refresh().map_err(on(&subject))?;
            }
            if done(printer) || stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_client::records::records::{Header, Record};
    use odradek_client::records::{BatchParams, Codec, build_batch};

    #[test]
    fn starts_parse() {
        assert_eq!(parse_start("start").expect("ok"), Start::Earliest);
        assert_eq!(parse_start("end").expect("ok"), Start::Latest);
        assert_eq!(parse_start("42").expect("ok"), Start::Offset(42));
        assert_eq!(parse_start("-2").expect("ok"), Start::Last(2));
        assert_eq!(parse_start("@1700000000000").expect("ok"), Start::Timestamp(1_700_000_000_000));
        assert!(parse_start("x").is_err());
        assert!(parse_start("@x").is_err());
    }

    #[test]
    fn batches_decode_with_headers_and_a_partial_tail_is_left() {
        let rec = Record {
            attributes: 0,
            timestamp_delta: 5,
            offset_delta: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![Header {
                key: Bytes::from_static(b"h"),
                value: Some(Bytes::from_static(b"1")),
            }],
        };
        for codec in Codec::ALL {
            let mut params = BatchParams::simple(codec, 1000, 1);
            params.base_offset = 7;
            let batch = build_batch(&params, std::slice::from_ref(&rec)).expect("batch");
            let mut data = batch.to_vec();
            data.extend_from_slice(&batch[..20]);
            let got = decode(&Bytes::from(data)).expect("decodes");
            assert_eq!(got.len(), 1, "{codec}");
            assert_eq!(got[0].0, 8);
            let r = &got[0].1[0];
            assert_eq!((r.offset, r.timestamp), (7, 1005));
            assert_eq!(r.headers[0].0, Bytes::from_static(b"h"));
        }
    }
}
