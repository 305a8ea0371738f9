//! Host checks, fixes, disk measurement and autotune: everything behind `odradek tune`, and
//! the checks `odradek serve` runs at start-up.
//!
//! - [`host`]: what the checks read and write. All /proc, /sys and mount-table access goes
//!   through [`host::Host`], a root directory (`/` on a real host, a fake tree in tests);
//!   facts no file holds (resource limits, a real io_uring probe, free space, usable CPUs) come
//!   from a [`host::System`], which tests replace.
//! - [`checks`]: one small [`checks::Check`] per setting: `id`, `is_supported`, `check`, and
//!   `apply` where writing a /proc/sys or /sys file fixes it. A check never fails: a missing
//!   file makes it "not applicable", an unreadable one "unknown".
//! - [`report`]: the table and the `--script` shell script.
//! - [`iotune`]: measures the data device and keeps the result in `<data_dir>/iotune.json`.
//! - [`autotune`]: the node's defaults (shards, memory per shard, direct writes) derived from
//!   the hardware and the iotune result.
//!
//! Guarantees: nothing here writes to the host except [`checks::apply`] (only the files named
//! by the findings' changes, under the root) and [`iotune`] (scratch files it removes, and its
//! result file). Every read is bounded ([`host::READ_BYTES_MAX`], [`host::DIR_ENTRIES_MAX`]).
#![forbid(unsafe_code)]

pub mod autotune;
pub mod checks;
pub mod error;
pub mod host;
pub mod iotune;
pub mod probe;
pub mod report;
pub mod startup;

pub use checks::{Change, Check, Ctx, Finding, Severity};
pub use error::{HostError, IoTuneError, ScriptError};
pub use host::{Host, RealSystem, System};
