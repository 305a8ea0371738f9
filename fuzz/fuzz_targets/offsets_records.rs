//! The `__consumer_offsets` readers a group coordinator runs over its partition when it loads:
//! `parse_key`, `parse_value` (committed offsets) and `parse_group_value` (group metadata).
//! Besides never panicking, whatever they accept must survive a round trip through the
//! writers (`offset_value`, `group_value`): what is read back is what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odradek_node::group::records::{
    group_value, offset_value, parse_group_value, parse_key, parse_value,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_key(data);
    if let Some(c) = parse_value(data)
        && let Ok(bytes) = offset_value(&c)
    {
        assert_eq!(parse_value(&bytes), Some(c), "offset value round trip");
    }
    if let Some(g) = parse_group_value(data)
        && let Ok(bytes) = group_value(&g)
    {
        assert_eq!(parse_group_value(&bytes), Some(g), "group value round trip");
    }
});
