//! The .deb and the systemd unit, as far as they can be tested without installing into this
//! machine's root: `packaging/build-deb.sh` builds the package around this build's binary;
//! its metadata and file list are checked with dpkg-deb; it is unpacked into a throwaway
//! directory, where `systemd-analyze verify` checks the unit (with its paths pointing there)
//! and the unpacked binary, started with the packaged config, serves Kafka and the admin API
//! and stops cleanly on SIGTERM, as systemd would stop it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{run_bounded, run_ok, signal_and_wait, stdout_lines};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

/// Runs `cmd` (bounded, it must exit 0) and returns its stdout.
fn ok(cmd: &mut Command) -> String {
    run_ok(cmd, b"", Duration::from_secs(120)).stdout
}

/// Builds the package around this build's binary; returns its path.
fn build_deb(out: &Path) -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("packaging/build-deb.sh"))
        .arg(out)
        .current_dir(repo())
        .env("BIN", env!("CARGO_BIN_EXE_odradek"))
        .env("COMPRESS", "gzip")
        .env("LEVEL", "1");
    let printed = ok(&mut cmd);
    PathBuf::from(printed.trim())
}

#[test]
fn the_deb_unpacks_to_a_node_that_serves_and_a_unit_systemd_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(&tmp.path().join("out"));
    assert!(deb.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("odradek_")));

    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in ["Package: odradek", "Architecture: ", "Depends: libc6", "conffiles", "postinst"] {
        assert!(info.contains(field), "no {field:?} in:\n{info}");
    }
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let root_line = contents.lines().find(|l| l.ends_with(" ./")).expect("the root entry");
    assert!(root_line.starts_with("drwxr-xr-x"), "the package must not change /: {root_line}");
    for path in [
        "./usr/bin/odradek",
        "./lib/systemd/system/odradek.service",
        "./etc/odradek/odradek.toml",
        "./usr/share/doc/odradek/grafana-dashboard.json",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "no {path} in:\n{contents}");
    }
    let control = tmp.path().join("control");
    ok(Command::new("dpkg-deb").arg("--control").arg(&deb).arg(&control));
    for script in ["postinst", "prerm", "postrm"] {
        ok(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    let root = tmp.path().join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));

    // The unit as systemd reads it, with its paths pointing into the unpacked tree (verify
    // checks that ExecStart's binary exists). It prints a line for every directive it does
    // not accept, and still exits 0: so nothing may be printed.
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/odradek.service")).expect("the unit");
    let r = root.display().to_string();
    let here = unit
        .replace("/usr/bin/odradek", &format!("{r}/usr/bin/odradek"))
        .replace("/etc/odradek", &format!("{r}/etc/odradek"));
    let unit_path = tmp.path().join("odradek.service");
    std::fs::write(&unit_path, here).expect("write the unit");
    let out = run_bounded(
        Command::new("systemd-analyze").arg("verify").arg(&unit_path),
        b"",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|o| panic!("systemd-analyze did not finish: {}", o.text()));
    assert!(
        out.status.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "systemd-analyze verify: {}",
        out.text()
    );
    for directive in ["LimitNOFILE=1048576", "LimitMEMLOCK=infinity", "Restart=on-failure"] {
        assert!(unit.contains(directive), "the unit lacks {directive}");
    }
    assert!(unit.contains("ExecStartPre=-+/usr/bin/odradek tune --apply"), "{unit}");

    // The unpacked binary with the packaged config, moved to a scratch directory and ports.
    let (port, admin) = (free_port(), free_port());
    let config = std::fs::read_to_string(root.join("etc/odradek/odradek.toml")).expect("config");
    let data = tmp.path().join("data");
    let mut adapted = String::new();
    for line in config.lines() {
        let line = match line.split('=').next().map(str::trim) {
            Some("data_dir") => format!("data_dir = \"{}\"", data.display()),
            Some("listen") => format!("listen = \"127.0.0.1:{port}\""),
            Some("admin_listen") => format!("admin_listen = \"127.0.0.1:{admin}\""),
            _ => line.to_owned(),
        };
        adapted.push_str(&line);
        adapted.push('\n');
    }
    assert!(adapted.contains(&format!("127.0.0.1:{admin}")), "admin_listen is in the config");
    let config_path = tmp.path().join("odradek.toml");
    std::fs::write(&config_path, adapted).expect("write the config");
    let mut node = Command::new(root.join("usr/bin/odradek"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--smp")
        .arg("1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the unpacked odradek");
    let rx = stdout_lines(&mut node);
    let ready = rx.recv_timeout(Duration::from_secs(30)).expect("the ready line");
    assert!(ready.starts_with("odradek ready"), "{ready}");

    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("packaging-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let resp: ApiVersionsResponse = common::call(&mut s, 3, &req);
    assert_eq!(resp.error_code, 0);
    assert!(resp.api_keys.len() > 20, "{} APIs", resp.api_keys.len());

    let mut h = TcpStream::connect(("127.0.0.1", admin)).expect("connect to the admin API");
    h.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut answer = String::new();
    h.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // What systemd's stop does: SIGTERM, then wait (TimeoutStopSec) for exit 0.
    let status = signal_and_wait(&mut node, "-TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}");
}
