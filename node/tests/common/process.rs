//! Running a client process (kcat, a Python script) with input on stdin, bounded in time.
#![allow(dead_code)] // included on its own by some test files, which use a subset

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A finished (or killed) client process.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` with `input` on stdin: `Ok` once it exits, `Err` with what it printed if it is
/// still running after `limit` (it is then killed by PID).
pub fn run_bounded(cmd: &mut Command, input: &[u8], limit: Duration) -> Result<Out, Out> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + limit;
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait().expect("poll client") {
            break (s, false);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
            let _ = child.wait();
            break (ExitStatus::default(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    let out = Out {
        status,
        stdout: String::from_utf8_lossy(&out.join().expect("join")).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().expect("join")).into_owned(),
    };
    if timed_out { Err(out) } else { Ok(out) }
}

/// The lines a child prints on stdout, as they come (a thread reads them until it closes).
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Sends `sig` (as `kill` takes it, e.g. `-TERM`) to the child and waits for it to exit, at
/// most `limit` (then it is killed and the test fails).
pub fn signal_and_wait(child: &mut std::process::Child, sig: &str, limit: Duration) -> ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success());
    wait_bounded(child, limit)
}

/// Waits for the child to exit, at most `limit` (then it is killed and the test fails).
pub fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("poll the child") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` as [`run_bounded`] does and asserts it finished in time and exited 0; panics
/// with everything it printed otherwise.
pub fn run_ok(cmd: &mut Command, input: &[u8], limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    let out = run_bounded(cmd, input, limit)
        .unwrap_or_else(|o| panic!("{shown} still running after {limit:?}\n{}", o.text()));
    assert!(out.status.success(), "{shown}: {}\n{}", out.status, out.text());
    out
}

/// A node started with `odradek serve --data-dir <its temp dir>/data` and the given flags,
/// after its ready line; stopped with SIGTERM (bounded) when dropped. Its log goes to
/// `<dir>/node.log`.
pub struct Served {
    pub child: std::process::Child,
    pub ready: String,
    pub log: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub fn start(flags: &[String]) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("node.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(flags)
            .env("ODRADEK_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start odradek");
        let rx = stdout_lines(&mut child);
        let ready = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("no ready line\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        assert!(ready.starts_with("odradek ready"), "{ready}");
        Served { child, ready, log, dir }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal_and_wait(&mut self.child, "-TERM", Duration::from_secs(10));
        }
    }
}
