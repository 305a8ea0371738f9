//! Direct (`O_DIRECT`) appends: staging through aligned buffers, and their per-thread pool.
//!
//! A direct write must start at a block-aligned file position and cover whole blocks from an
//! aligned buffer. An append rarely ends on a block boundary, so the log keeps the bytes of the
//! partial last block (the *tail*) in memory; the next append writes the tail again, followed by
//! the new bytes, zero-padded to the next block. The rewritten prefix is byte-for-byte what is
//! already on disk, so even a torn write (sectors are atomic) cannot damage synced data; the
//! zero padding past the logical end is cut when the segment is sealed, and by recovery.
//!
//! Staging buffers come from a small per-thread pool, allocated (and so page-faulted) once and
//! reused, so the copy into them costs memory bandwidth only.

use std::cell::RefCell;
use std::io;

use bytes::Bytes;

use crate::backend::{AlignedBuf, DIRECT_ALIGN, StorageFile};

/// Usable bytes of one staging buffer; larger appends are written in several direct writes.
pub const STAGING_BYTES: usize = 4 * 1024 * 1024;
/// Staging buffers kept per thread between writes.
const STAGING_POOLED_MAX: usize = 2;

thread_local! {
    static STAGING: RefCell<Vec<AlignedBuf>> = const { RefCell::new(Vec::new()) };
}

fn take() -> AlignedBuf {
    STAGING
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| AlignedBuf::with_capacity(STAGING_BYTES))
}

fn give(mut buf: AlignedBuf) {
    buf.clear();
    STAGING.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < STAGING_POOLED_MAX {
            pool.push(buf);
        }
    });
}

/// Writes `iov` so that the data ends at `start_pos + len(iov)`, given `tail`, the bytes of the
/// partial block the data currently ends in (`start_pos % DIRECT_ALIGN` of them). Returns the new
/// tail. On error the file may hold a partial write past `start_pos`, which the caller cuts.
pub async fn write<F: StorageFile>(
    file: &F,
    tail: &[u8],
    start_pos: u64,
    iov: &[Bytes],
) -> io::Result<Vec<u8>> {
    let align = DIRECT_ALIGN as u64;
    assert_eq!(tail.len() as u64, start_pos % align, "tail matches the data end");
    let mut pos = start_pos - start_pos % align;
    let mut buf = take();
    buf.fill_from(tail);
    for chunk in iov {
        let mut src: &[u8] = chunk;
        while !src.is_empty() {
            let n = buf.fill_from(src);
            src = &src[n..];
            if buf.room() == 0 {
                let len = buf.len() as u64;
                let (res, back) = file.write_direct(pos, buf).await;
                buf = back;
                if let Err(e) = res {
                    give(buf);
                    return Err(e);
                }
                pos += len;
            }
        }
    }
    let data_len = buf.len();
    let new_tail = buf.as_slice()[data_len - data_len % DIRECT_ALIGN..].to_vec();
    let mut result = Ok(());
    if data_len > 0 {
        buf.pad_to_alignment();
        let (res, back) = file.write_direct(pos, buf).await;
        buf = back;
        result = res;
    }
    give(buf);
    result.map(|()| new_tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned_and_bounded() {
        let mut b = AlignedBuf::with_capacity(10_000);
        assert_eq!(b.capacity(), 12_288);
        assert_eq!(b.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
        assert_eq!(b.fill_from(&[7u8; 20_000]), 12_288);
        assert_eq!(b.room(), 0);
        b.clear();
        b.fill_from(&[1, 2, 3]);
        b.pad_to_alignment();
        assert_eq!(b.len(), DIRECT_ALIGN);
        assert_eq!(&b.as_slice()[..4], &[1, 2, 3, 0]);
    }
}
