//! The real io_uring probe: a small ring, then `IORING_REGISTER_PROBE` for the opcodes the
//! node submits through compio.

use std::io;

use io_uring::{IoUring, Probe, opcode};

use crate::host::RingProbe;

/// Entries of the probe ring (it submits nothing).
const PROBE_RING_ENTRIES: u32 = 8;

/// The opcodes compio 0.19 submits for what the node does, by name. compio runs an operation
/// whose opcode the kernel lacks on a blocking thread pool instead, so a missing one costs
/// speed, not correctness.
pub const OPCODES: &[(&str, u8)] = &[
    ("READ", opcode::Read::CODE),
    ("READV", opcode::Readv::CODE),
    ("WRITE", opcode::Write::CODE),
    ("WRITEV", opcode::Writev::CODE),
    ("FSYNC", opcode::Fsync::CODE),
    ("OPENAT", opcode::OpenAt::CODE),
    ("CLOSE", opcode::Close::CODE),
    ("STATX", opcode::Statx::CODE),
    ("FTRUNCATE", opcode::Ftruncate::CODE),
    ("RENAMEAT", opcode::RenameAt::CODE),
    ("UNLINKAT", opcode::UnlinkAt::CODE),
    ("MKDIRAT", opcode::MkDirAt::CODE),
    ("SPLICE", opcode::Splice::CODE),
    ("ACCEPT", opcode::Accept::CODE),
    ("RECV", opcode::Recv::CODE),
    ("SEND", opcode::Send::CODE),
    ("SENDMSG", opcode::SendMsg::CODE),
];

/// Creates a ring and reports which of [`OPCODES`] the kernel supports.
pub fn probe_ring() -> io::Result<RingProbe> {
    let ring = IoUring::new(PROBE_RING_ENTRIES)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let opcodes = OPCODES.iter().map(|&(name, code)| (name, probe.is_supported(code))).collect();
    Ok(RingProbe { opcodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_a_ring_and_every_opcode_the_node_uses() {
        let probe = probe_ring().expect("the test machine has io_uring");
        let missing: Vec<_> = probe.opcodes.iter().filter(|(_, ok)| !ok).collect();
        assert!(missing.is_empty(), "Linux 6.18 has them all: {missing:?}");
        assert_eq!(probe.opcodes.len(), OPCODES.len());
    }
}
