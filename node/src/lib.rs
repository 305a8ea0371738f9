//! Process wiring of the `odradek` binary: config, shards, listeners, metadata, signals.
//!
//! Not built yet: the node issue fills this crate and adds the `odradek` binary. Until then the
//! storage engine is exercised through `odradek-bench storage` and the test suite.
#![forbid(unsafe_code)]
