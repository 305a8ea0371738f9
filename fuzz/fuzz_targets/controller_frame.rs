//! The controller port's frame decoder (`odradek_controller::net`): the 4-byte length prefix
//! (`frame_body_len`, against the handshake's and the later frames' bounds), then the JSON body
//! (`decode_frame_body`) as each message type a peer reads: the handshake and its reply on
//! either side, then requests (raft RPCs, forwarded proposals, image polls) and responses.
//! The first byte chooses the type; the next four are the prefix; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odradek_controller::net::{
    FRAME_BYTES_MAX, HANDSHAKE_BYTES_MAX, Handshake, HandshakeReply, Request, Response,
    decode_frame_body, frame_body_len,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Some((prefix, body)) = rest.split_first_chunk::<4>() else { return };
    let max = if selector % 4 < 2 { HANDSHAKE_BYTES_MAX } else { FRAME_BYTES_MAX };
    if let Ok(len) = frame_body_len(*prefix, max) {
        assert!((1..=max).contains(&len));
    }
    match selector % 4 {
        0 => {
            if let Ok(h) = decode_frame_body::<Handshake>(body) {
                // What is accepted encodes again (the reply path writes the same types).
                assert!(serde_json::to_vec(&h).is_ok());
            }
        }
        1 => {
            let _ = decode_frame_body::<HandshakeReply>(body);
        }
        2 => {
            let _ = decode_frame_body::<Request>(body);
        }
        _ => {
            let _ = decode_frame_body::<Response>(body);
        }
    }
});
