//! What the controller listener refuses: other clusters, unknown nodes, other voter lists,
//! garbage and oversize frames. Each is refused with a log line, the node keeps working and
//! the metadata does not change.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;
use odradek_controller::net::{self, CLUSTER_ID_FILE, Handshake, HandshakeReply, Identity};
use odradek_controller::{Controller, MetadataImage, Voters};
use uuid::Uuid;

fn same_metadata(a: &MetadataImage, b: &MetadataImage) -> bool {
    a.brokers == b.brokers && a.topics == b.topics && a.next_producer_id == b.next_producer_id
}

/// Tries the real client handshake as `node_id` with `cluster_id` and `voters`.
fn try_handshake(
    root: &Path,
    node_id: u64,
    cluster_id: Option<Uuid>,
    voters: Voters,
    to: SocketAddr,
) -> String {
    let dir = root.join(format!("intruder{node_id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let listen = SocketAddr::from(([127, 0, 0, 5], 0));
    let ident = Identity::new(node_id, listen, voters, dir, cluster_id);
    match block_on(net::connect(&ident, to)) {
        Ok(_) => panic!("node {node_id} with {cluster_id:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn other_cluster_unknown_node_and_other_voters_are_refused() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_321;
    let n1 = Controller::start(config(1, 3, port, root.path())).expect("start 1");
    let n2 = Controller::start(config(2, 3, port, root.path())).expect("start 2");
    let _ = agreed_leader(&[&n1, &n2]);
    register(&n2, 1);
    create_topic(&n1, "kept", 1, 1);
    let before = converged(&[&n1, &n2]);

    // Node 3 comes up with a data dir that belongs to another cluster: both sides refuse.
    let other = Uuid::new_v4();
    let d3 = data_dir(root.path(), 3);
    std::fs::create_dir_all(&d3).expect("dir");
    std::fs::write(d3.join(CLUSTER_ID_FILE), serde_json::to_vec(&other).expect("json"))
        .expect("write");
    let n3 = Controller::start(config(3, 3, port, root.path())).expect("start 3");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(n3.image().applied_index, 0, "the impostor learned nothing");
    assert_eq!(n3.quorum_status().cluster_id, Some(other), "the impostor kept its id");

    let v = voters(3, port);
    let to = addr(1, port);
    let reason = try_handshake(root.path(), 4, None, v.clone(), to);
    assert!(reason.contains("not another configured voter"), "{reason}");
    let ident = Identity::observer(2, addr(3, 0), v.clone(), root.path().join("obs"), None);
    let reason =
        block_on(net::connect(&ident, to)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(reason.contains("observer node id 2 is a voter's id"), "{reason}");
    let reason = try_handshake(root.path(), 2, Some(Uuid::new_v4()), v.clone(), to);
    assert!(reason.contains("cluster id differs"), "{reason}");
    let odd = Voters::parse(&format!("1@{},2@{},3@127.0.0.9:{port}", addr(1, port), addr(2, port)))
        .expect("voters");
    let reason = try_handshake(root.path(), 2, None, odd, to);
    assert!(reason.contains("voter list differs"), "{reason}");

    // The cluster works on, with its metadata unchanged by any of this.
    let after = converged(&[&n1, &n2]);
    assert!(same_metadata(&before, &after));
    create_topic(&n2, "later", 1, 1);
    let after = converged(&[&n1, &n2]);
    assert!(after.topics.contains_key("kept") && after.topics.contains_key("later"));
    assert_eq!(n3.image().applied_index, 0);
}

fn expect_closed(mut s: TcpStream, what: &str) {
    s.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // a refusal reply before the close
            // Only a read that timed out means the server kept the connection open.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("{what}: the connection stayed open ({e})")
            }
            Err(_) => return, // reset or aborted: closed
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Connects and passes the handshake as node 3 (which is not running), or as observer 10.
fn handshaken(to: SocketAddr, voters: &Voters, observer: bool) -> TcpStream {
    let mut s = TcpStream::connect(to).expect("connect");
    let hs = Handshake {
        magic: "odradek-controller/1".into(),
        cluster_id: None,
        node_id: if observer { 10 } else { 3 },
        voters: voters.canonical(),
        observer,
    };
    s.write_all(&frame(&serde_json::to_vec(&hs).expect("json"))).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply");
    let reply: HandshakeReply = serde_json::from_slice(&body).expect("decodes");
    assert!(matches!(reply, HandshakeReply::Accepted { .. }), "{reply:?}");
    s
}

#[test]
fn garbage_and_oversize_frames_close_the_connection() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_331;
    let n1 = Controller::start(config(1, 3, port, root.path())).expect("start 1");
    let n2 = Controller::start(config(2, 3, port, root.path())).expect("start 2");
    let _ = agreed_leader(&[&n1, &n2]);
    register(&n1, 1);
    let before = converged(&[&n1, &n2]);
    let to = addr(1, port);
    let v = voters(3, port);

    let mut s = TcpStream::connect(to).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    expect_closed(s, "HTTP instead of a handshake");

    let mut s = TcpStream::connect(to).expect("connect");
    s.write_all(&frame(b"{\"not\":\"a handshake\"}")).expect("write");
    expect_closed(s, "an undecodable handshake");

    let mut s = handshaken(to, &v, false);
    s.write_all(&u32::MAX.to_be_bytes()).expect("write");
    expect_closed(s, "an oversize frame");

    let mut s = handshaken(to, &v, false);
    s.write_all(&frame(b"\x00\xffgarbage")).expect("write");
    expect_closed(s, "a garbage frame");

    let mut s = handshaken(to, &v, false);
    s.write_all(&frame(b"{\"Vote\":{\"vote\":42}}")).expect("write");
    expect_closed(s, "a request that does not decode");

    // An observer may follow and propose, never speak raft.
    let mut s = handshaken(to, &v, true);
    s.write_all(&frame(b"{\"FetchImage\":{\"after\":0}}")).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("an image");
    let mut s = handshaken(to, &v, true);
    // A well-formed vote request: refused for who sent it, not for its bytes.
    let vote = net::Request::Vote(openraft::raft::VoteRequest::new(
        odradek_controller::types::Vote::new(99, 10),
        None,
    ));
    let vote = serde_json::to_string(&vote).expect("json");
    s.write_all(&frame(vote.as_bytes())).expect("write");
    expect_closed(s, "a raft request from an observer");

    let after = converged(&[&n1, &n2]);
    assert!(same_metadata(&before, &after), "garbage changed nothing");
    create_topic(&n2, "still-works", 1, 1);
    assert!(converged(&[&n1, &n2]).topics.contains_key("still-works"));
}
