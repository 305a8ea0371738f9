//! Host checks and autotune (`odradek tune`).
//!
//! Not built yet: the tuning issue fills this crate.
#![forbid(unsafe_code)]
