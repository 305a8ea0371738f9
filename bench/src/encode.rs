//! `encode`: the producer's record path alone (value generation, RecordBatch v2 encoding,
//! compression, CRC-32C), on one thread, without a network, to show the client is not the
//! bottleneck.

use std::time::{Duration, Instant};

use crate::dist::Rng;
use odradek_records::{BatchBuilder, Codec, ProducerStamp};

#[derive(Debug, Clone, clap::Args)]
pub struct EncodeArgs {
    /// Record value size in bytes.
    #[arg(long, value_parser = crate::units::parse_size, default_value = "100")]
    pub record_size: u64,
    /// Bytes of records per batch.
    #[arg(long, value_parser = crate::units::parse_size, default_value = "16KiB")]
    pub batch_size: u64,
    #[arg(long, value_parser = crate::codec_arg::parser(), default_value = "none")]
    pub compression: Codec,
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "5s")]
    pub duration: Duration,
}

pub fn run(args: &EncodeArgs) -> anyhow::Result<()> {
    if args.record_size > 64 << 20 || args.batch_size > 64 << 20 {
        anyhow::bail!("sizes above 64 MiB are not supported");
    }
    let size = args.record_size as usize;
    let mut rng = Rng::new(7);
    let noise: Vec<u8> = (0..size + 4096).map(|_| rng.next_u64() as u8).collect();
    let mut builder = BatchBuilder::new(args.compression);
    let mut out = Vec::new();
    let mut value = Vec::with_capacity(size);
    let (mut records, mut batches, mut bytes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < args.duration {
        for i in 0..1024u64 {
            // What a producer does per record: copy a value, stamp it, append it.
            let off = rng.below(4096) as usize;
            value.clear();
            value.extend_from_slice(&noise[off..off + size]);
            if size >= 8 {
                value[..8].copy_from_slice(&(records + i).to_be_bytes());
            }
            builder.push(1_700_000_000_000, None, &value)?;
            if builder.records_bytes() as u64 >= args.batch_size {
                builder.finish(ProducerStamp::NONE, &mut out)?;
                batches += 1;
                bytes += out.len() as u64;
            }
        }
        records += 1024;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "encode: {size} B records, {} B batches, {:?}: {:.0} records/s, {:.0} batches/s, {:.1} MB/s of batches",
        args.batch_size,
        args.compression,
        records as f64 / secs,
        batches as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
