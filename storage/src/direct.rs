//! Direct (`O_DIRECT`) appends: staging through aligned buffers, and their per-thread pool.
//!
//! A direct write must start at a block-aligned file position and cover whole blocks from an
//! aligned buffer. An append rarely ends on a block boundary, so the log keeps the bytes of the
//! partial last block (the *tail*) in memory; the next append writes the tail again, followed by
//! the new bytes, zero-padded to the next block. The rewritten prefix is byte-for-byte what is
//! already on disk, so even a torn write (sectors are atomic) cannot damage synced data; the
//! zero padding past the logical end is cut when the segment is sealed, and by recovery.
//!
//! A group is staged in [`STAGING_BYTES`] pieces and up to [`WRITES_IN_FLIGHT_MAX`] pieces are
//! written concurrently: the pieces never overlap (each but the last is whole blocks), and a
//! single large write at queue depth one leaves this disk idle between requests.
//!
//! Staging buffers come from a small per-thread pool, allocated (and so page-faulted) once and
//! reused, so the copy into them costs memory bandwidth only.

use std::cell::RefCell;
use std::io;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::backend::{AlignedBuf, DIRECT_ALIGN, StorageFile};

/// Usable bytes of one staging buffer, and the size of one direct write.
pub const STAGING_BYTES: usize = 1024 * 1024;
/// Direct writes of one group in flight at once.
pub const WRITES_IN_FLIGHT_MAX: usize = 4;
/// Staging buffers kept per thread between writes.
const STAGING_POOLED_MAX: usize = 2 * WRITES_IN_FLIGHT_MAX;

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

/// Writes the staged pieces, the first at `pos`, concurrently; returns the buffers to the pool.
async fn flush<F: StorageFile>(file: &F, pos: u64, pieces: Vec<AlignedBuf>) -> io::Result<u64> {
    let mut at = pos;
    let writes = pieces.into_iter().map(|buf| {
        let here = at;
        at += buf.len() as u64;
        file.write_direct(here, buf)
    });
    let mut result = Ok(());
    for (res, buf) in join_all(writes).await {
        give(buf);
        if result.is_ok() {
            result = res;
        }
    }
    result.map(|()| at)
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
    let mut pieces: Vec<AlignedBuf> = Vec::with_capacity(WRITES_IN_FLIGHT_MAX);
    let mut buf = take();
    buf.fill_from(tail);
    for chunk in iov {
        let mut src: &[u8] = chunk;
        while !src.is_empty() {
            let n = buf.fill_from(src);
            src = &src[n..];
            if buf.room() == 0 {
                pieces.push(std::mem::replace(&mut buf, take()));
                if pieces.len() == WRITES_IN_FLIGHT_MAX {
                    match flush(file, pos, std::mem::take(&mut pieces)).await {
                        Ok(next) => pos = next,
                        Err(e) => {
                            give(buf);
                            return Err(e);
                        }
                    }
                }
            }
        }
    }
    let data_len = buf.len();
    let new_tail = buf.as_slice()[data_len - data_len % DIRECT_ALIGN..].to_vec();
    if data_len > 0 {
        buf.pad_to_alignment();
        pieces.push(buf);
    } else {
        give(buf);
    }
    if !pieces.is_empty() {
        flush(file, pos, pieces).await?;
    }
    Ok(new_tail)
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
