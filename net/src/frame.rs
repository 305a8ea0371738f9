//! Kafka framing: every request and every response is a 4-byte big-endian length `N` followed by
//! exactly `N` bytes.
//!
//! Contracts:
//! - [`frame_len`] judges a request's length prefix *before* any of its body is read, so a client
//!   cannot make the broker allocate or read more than `socket.request.max.bytes`.
//! - [`encode_frame`] and [`length_prefix`] refuse a body whose length does not fit the `int32`
//!   prefix; nothing is written to `out` then.
//! - [`split_frame`] is the same check for callers that read into an accumulating buffer.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the length prefix in front of every request and response.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Kafka's default `socket.request.max.bytes` (100 MiB): the largest request a broker reads.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: usize = 104_857_600;
/// The largest body an `int32` length prefix can describe (responses are bounded by this only).
pub const FRAME_BYTES_MAX: usize = i32::MAX as usize;

const _: () = assert!(LENGTH_PREFIX_BYTES == size_of::<i32>());
const _: () = assert!(SOCKET_REQUEST_MAX_BYTES_DEFAULT == 100 * 1024 * 1024);
const _: () = assert!(SOCKET_REQUEST_MAX_BYTES_DEFAULT <= FRAME_BYTES_MAX);

/// Why a length prefix, or a body to frame, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The prefix is negative (Kafka: "Invalid receive (size = -N)"); the stream is unusable.
    #[error("frame length {length} is negative")]
    Negative { length: i32 },
    /// The prefix is zero: no request can be empty (it needs at least an api key).
    #[error("frame length is zero")]
    Empty,
    /// The frame is larger than the configured bound (`socket.request.max.bytes` for requests,
    /// [`FRAME_BYTES_MAX`] for responses).
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
}

/// The length of the request body announced by `prefix`, checked against `max` (normally
/// `socket.request.max.bytes`) before the body is read.
///
/// Returns a length in `1..=min(max, FRAME_BYTES_MAX)`.
pub fn frame_len(prefix: [u8; LENGTH_PREFIX_BYTES], max: usize) -> Result<usize, FrameError> {
    let length = i32::from_be_bytes(prefix);
    // A negative prefix is rejected here, so the conversion cannot fail after it.
    let Ok(len) = usize::try_from(length) else {
        return Err(FrameError::Negative { length });
    };
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { length: len, max });
    }
    Ok(len)
}

/// The 4-byte prefix announcing a body of `len` bytes.
pub fn length_prefix(len: usize) -> Result<[u8; LENGTH_PREFIX_BYTES], FrameError> {
    match i32::try_from(len) {
        Ok(length) => Ok(length.to_be_bytes()),
        Err(_) => Err(FrameError::TooLarge { length: len, max: FRAME_BYTES_MAX }),
    }
}

/// Appends `body` to `out` as one frame: its length prefix, then the bytes. Writes nothing when
/// the body is too large for the prefix.
pub fn encode_frame(body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    let prefix = length_prefix(body.len())?;
    out.reserve(LENGTH_PREFIX_BYTES + body.len());
    out.put_slice(&prefix);
    out.put_slice(body);
    Ok(())
}

/// Takes one whole request body (without its prefix) off the front of `buf`, if one has fully
/// arrived. `Ok(None)` means more bytes are needed; `buf` is then unchanged. An error means the
/// connection must be closed: the prefix is refused as soon as its 4 bytes are there, before the
/// body arrives.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let len = frame_len(*prefix, max)?;
    // `len <= max` and `len <= i32::MAX`, so this cannot overflow.
    let total = LENGTH_PREFIX_BYTES + len;
    if buf.len() < total {
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    let _prefix = frame.split_to(LENGTH_PREFIX_BYTES);
    Ok(Some(frame.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(n: i32) -> [u8; 4] {
        n.to_be_bytes()
    }

    #[test]
    fn frame_len_bounds() {
        let max = SOCKET_REQUEST_MAX_BYTES_DEFAULT;
        let max_i32 = i32::try_from(max).expect("default fits i32");
        assert_eq!(frame_len(prefix(0), max), Err(FrameError::Empty));
        assert_eq!(frame_len(prefix(-1), max), Err(FrameError::Negative { length: -1 }));
        assert_eq!(
            frame_len(prefix(i32::MIN), max),
            Err(FrameError::Negative { length: i32::MIN })
        );
        assert_eq!(frame_len(prefix(1), max), Ok(1));
        assert_eq!(frame_len(prefix(max_i32), max), Ok(max));
        assert_eq!(
            frame_len(prefix(max_i32 + 1), max),
            Err(FrameError::TooLarge { length: max + 1, max })
        );
        assert_eq!(
            frame_len(prefix(i32::MAX), max),
            Err(FrameError::TooLarge { length: FRAME_BYTES_MAX, max })
        );
        // A caller-chosen bound above the i32 range is capped by the prefix itself.
        assert_eq!(frame_len(prefix(i32::MAX), usize::MAX), Ok(FRAME_BYTES_MAX));
        // A small configured bound.
        assert_eq!(frame_len(prefix(10), 10), Ok(10));
        assert_eq!(frame_len(prefix(11), 10), Err(FrameError::TooLarge { length: 11, max: 10 }));
    }

    #[test]
    fn length_prefix_bounds() {
        assert_eq!(length_prefix(0), Ok([0, 0, 0, 0]));
        assert_eq!(length_prefix(0x0102_0304), Ok([1, 2, 3, 4]));
        assert_eq!(length_prefix(FRAME_BYTES_MAX), Ok(i32::MAX.to_be_bytes()));
        assert_eq!(
            length_prefix(FRAME_BYTES_MAX + 1),
            Err(FrameError::TooLarge { length: FRAME_BYTES_MAX + 1, max: FRAME_BYTES_MAX })
        );
    }

    #[test]
    fn encode_frame_writes_prefix_and_body() {
        let mut out = BytesMut::from(&b"xx"[..]);
        encode_frame(b"hello", &mut out).expect("small body");
        assert_eq!(&out[..], b"xx\x00\x00\x00\x05hello");
    }

    #[test]
    fn split_frame_waits_for_whole_frames() {
        let max = 16;
        let mut buf = BytesMut::new();
        assert_eq!(split_frame(&mut buf, max), Ok(None));
        buf.put_slice(&[0, 0, 0]);
        assert_eq!(split_frame(&mut buf, max), Ok(None));
        buf.put_slice(&[3, b'a', b'b']);
        assert_eq!(split_frame(&mut buf, max), Ok(None));
        assert_eq!(buf.len(), 6, "an incomplete frame leaves the buffer as it was");
        buf.put_slice(&[b'c', 0, 0, 0, 1, b'd', 0]);
        assert_eq!(split_frame(&mut buf, max), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(split_frame(&mut buf, max), Ok(Some(Bytes::from_static(b"d"))));
        assert_eq!(split_frame(&mut buf, max), Ok(None));
        assert_eq!(&buf[..], &[0]);
    }

    #[test]
    fn split_frame_refuses_before_the_body_arrives() {
        let mut buf = BytesMut::from(&prefix(17)[..]);
        assert_eq!(split_frame(&mut buf, 16), Err(FrameError::TooLarge { length: 17, max: 16 }));
        let mut buf = BytesMut::from(&prefix(-5)[..]);
        assert_eq!(split_frame(&mut buf, 16), Err(FrameError::Negative { length: -5 }));
        let mut buf = BytesMut::from(&prefix(0)[..]);
        assert_eq!(split_frame(&mut buf, 16), Err(FrameError::Empty));
    }
}
