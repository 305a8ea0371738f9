//! Running a client process (kcat, a Python script) with input on stdin, bounded in time.

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
