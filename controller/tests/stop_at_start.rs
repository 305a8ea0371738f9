//! A controller stopped right after it started (a node whose start-up is refused a moment
//! later) stops within a bound, however far raft got with its first election.

mod common;

use std::time::{Duration, Instant};

use common::*;
use odradek_controller::Controller;

#[test]
fn a_controller_stopped_at_once_stops_in_bounded_time() {
    let root = tempfile::tempdir().expect("tempdir");
    for round in 0..40u64 {
        let port = 29_700 + round as u16;
        let dir = root.path().join(round.to_string());
        let c = Controller::start(config(1, 1, port, &dir)).expect("start");
        // Vary how far the first election gets before the stop.
        std::thread::sleep(Duration::from_micros(round * 250));
        let t = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(c);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "round {round}: the controller did not stop within 20 s"
        );
        assert!(t.elapsed() < Duration::from_secs(20));
    }
}
