//! `odradek tune`: check the host (a table), fix what a file write fixes (`--apply`) or write
//! the equivalent script (`--script`), and `odradek tune iotune` to measure the data device.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use odradek_tuning::autotune::{self, HostFacts, Use};
use odradek_tuning::checks::{self, human_bytes};
use odradek_tuning::{Ctx, Host, RealSystem, Severity, iotune, report};

use crate::config::DATA_DIR_DEFAULT;

/// `odradek tune` flags.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneArgs {
    #[command(subcommand)]
    command: Option<TuneCommand>,
    /// Read (and with --apply, write) /proc, /sys and the mount table under DIR instead of /.
    /// Resource limits, the io_uring probe and free space are always this process's own.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The node's data directory: its file system, device and free space are checked.
    #[arg(long, env = "ODRADEK_DATA_DIR", value_name = "DIR", default_value = DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    /// Shards the node will run, for limits that grow with them [default: one per CPU].
    #[arg(long, value_name = "N")]
    smp: Option<usize>,
    /// Make the changes a file write can make (as root), printing each one.
    #[arg(long, conflicts_with = "script")]
    apply: bool,
    /// Write the changes --apply would make to FILE as a bash script, instead of making them.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TuneCommand {
    /// Measure the data device (sequential writes buffered and O_DIRECT, fdatasync latency,
    /// random reads) and write iotune.json into the data directory; the node reads it at
    /// start-up to choose its defaults.
    Iotune(IotuneArgs),
}

#[derive(Debug, Args)]
struct IotuneArgs {
    /// The data directory to measure (its scratch files are removed afterwards).
    #[arg(long, env = "ODRADEK_DATA_DIR", value_name = "DIR", default_value = DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    /// Total time of the four phases (e.g. 30s, 500ms, 2m).
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = iotune::parse_duration)]
    duration: Duration,
    /// Largest scratch file a write phase may grow to, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    file_mib_max: u64,
}

/// Runs `odradek tune`; the exit code is non-zero when a check is fatal or a change failed.
pub fn run(args: &TuneArgs) -> ExitCode {
    if let Some(TuneCommand::Iotune(io)) = &args.command {
        return run_iotune(io);
    }
    let host = Host::new(&args.root);
    let system = RealSystem;
    let shards = args.smp.unwrap_or_else(|| HostFacts::detect(&host, &system).cpus);
    let data_dir = if args.root == Path::new("/") {
        checks::real_data_dir(&args.data_dir)
    } else {
        args.data_dir.clone()
    };
    let ctx = Ctx { host: &host, system: &system, data_dir: &data_dir, shards };
    let all = checks::all();
    let findings = checks::run(&all, &ctx);
    print!("{}", report::table(&findings));
    println!("\n{}", report::summary(&findings));
    let mut failed = false;
    if let Some(path) = &args.script {
        match report::write_script(path, &findings) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("odradek: {e}");
                failed = true;
            }
        }
    } else if args.apply {
        for done in checks::apply(&all, &ctx, &findings) {
            match done {
                Ok(c) => println!("changed {}: {} -> {}", c.path, c.from, c.to),
                Err(e) => {
                    println!("failed: {e}");
                    failed = true;
                }
            }
        }
    }
    let fatal = findings.iter().any(|f| f.severity == Severity::Fatal);
    if fatal || failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn run_iotune(args: &IotuneArgs) -> ExitCode {
    let opts = iotune::Options {
        data_dir: args.data_dir.clone(),
        duration: args.duration,
        file_bytes_max: args.file_mib_max.saturating_mul(1 << 20),
    };
    println!(
        "measuring {} for {:?} (4 phases; scratch files up to {} MiB)",
        args.data_dir.display(),
        args.duration,
        args.file_mib_max
    );
    let result = match iotune::measure(&opts).and_then(|r| {
        let path = iotune::save(&args.data_dir, &r)?;
        Ok((r, path))
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("odradek: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (r, path) = result;
    let rate = |b: u64| format!("{}/s", human_bytes(b));
    println!(
        "sequential write, 1 MiB, buffered + fdatasync: {}",
        rate(r.seq_write_buffered_bytes_per_s)
    );
    match r.seq_write_direct_bytes_per_s {
        Some(b) => println!("sequential write, 1 MiB, O_DIRECT + fdatasync: {}", rate(b)),
        None => println!("sequential write, 1 MiB, O_DIRECT: not supported by this file system"),
    }
    println!(
        "4 KiB append + fdatasync: p50 {} µs, p99 {} µs ({} samples)",
        r.fdatasync_p50_us, r.fdatasync_p99_us, r.fdatasync_samples
    );
    println!(
        "4 KiB random read, queue depth 1{}: {} IOPS",
        if r.random_read_direct { ", O_DIRECT" } else { ", page cache" },
        r.random_read_iops
    );
    println!(
        "wrote {}\n\nthe node will choose (unless a flag or the config file says otherwise):",
        path.display()
    );
    let facts = HostFacts::detect(&Host::real(), &RealSystem);
    for line in autotune::derive(facts, Some(&r), None).lines(None) {
        let note = if line.used == Use::Advisory { " (advisory: no such knob yet)" } else { "" };
        println!("  {} = {}{note}: {}", line.knob, line.value, line.reason);
    }
    ExitCode::SUCCESS
}
