//! Request framing and decoding of every served API and version, as a connection does it:
//! the 4-byte length prefix through `frame_len` (against the default
//! `socket.request.max.bytes`), then the body through `decode_request`; a request that does not
//! decode goes through the node's `answer_decode_error`, which picks what (if anything) is sent
//! back. Must never panic or allocate without bound (libFuzzer's `-malloc_limit_mb`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use odradek_net::frame::{LENGTH_PREFIX_BYTES, SOCKET_REQUEST_MAX_BYTES_DEFAULT, frame_len};
use odradek_net::request::decode_request;

fuzz_target!(|data: &[u8]| {
    // The prefix is judged on its own (a real connection reads it first); the body is the
    // rest, whatever the prefix says, so that every body is reachable.
    let Some((prefix, body)) = data.split_first_chunk::<LENGTH_PREFIX_BYTES>() else { return };
    if let Ok(len) = frame_len(*prefix, SOCKET_REQUEST_MAX_BYTES_DEFAULT) {
        assert!((1..=SOCKET_REQUEST_MAX_BYTES_DEFAULT).contains(&len));
    }
    match decode_request(Bytes::copy_from_slice(body)) {
        Ok(request) => {
            assert_eq!(request.header.request_api_key, request.api_key as i16);
        }
        Err(e) => {
            if let Some((correlation_id, _, _, _)) = odradek_node::api::answer_decode_error(&e) {
                assert_eq!(Some(correlation_id), e.correlation_id());
            }
        }
    }
});
