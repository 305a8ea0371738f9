//! The transaction readers of the node and of storage, chosen by the first byte:
//! 0: `__transaction_state` key and value (`odradek_node::txn::records`), the value with a
//!    round trip through `txn_value`;
//! 1: a control batch's marker (`parse_marker`);
//! 2: a segment's `.txnindex` (`AbortedIndex::decode`, segment bounds from the next 16 bytes);
//! 3: a producer-state snapshot (`ProducerStates::decode`), with its CRC-32C made right so that
//!    the body is reached, and a round trip through `encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odradek_node::txn::records::{parse_key, parse_value, txn_value};
use odradek_storage::producers::ProducerStates;
use odradek_storage::txn::{AbortedIndex, parse_marker};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let _ = parse_key(rest);
            if let Some(m) = parse_value(rest)
                && let Ok(bytes) = txn_value(&m)
            {
                assert_eq!(parse_value(&bytes), Some(m), "txn value round trip");
            }
        }
        1 => {
            let _ = parse_marker(rest);
        }
        2 => {
            let Some((bounds, index)) = rest.split_first_chunk::<16>() else { return };
            let base = u64::from_be_bytes(bounds[..8].try_into().unwrap_or_default());
            let end = u64::from_be_bytes(bounds[8..].try_into().unwrap_or_default());
            if let Some(entries) = AbortedIndex::decode(index, base, end) {
                assert_eq!(AbortedIndex::encode(&entries), index, "txn index round trip");
            }
        }
        _ => {
            let mut snapshot = rest.to_vec();
            snapshot.extend_from_slice(&crc32c::crc32c(rest).to_be_bytes());
            if let Some(states) = ProducerStates::decode(&snapshot) {
                let again = ProducerStates::decode(&states.encode());
                assert!(again.is_some(), "a decoded snapshot re-encodes to a readable one");
            }
        }
    }
});
