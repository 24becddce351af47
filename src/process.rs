//! A program run with a deadline and killed whole: a credential helper, a
//! kubeconfig exec plugin. Such a program may hang (a login prompt nobody
//! sees), or leave something behind that still holds its output open (a
//! daemon it started), and opm must not wait for either.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// How long a program's output may stay open after it exited: what it
/// started and left running is stopped then.
const LEFTOVERS: Duration = Duration::from_millis(200);
/// How often the program and its output are looked at.
const POLL: Duration = Duration::from_millis(10);

/// What a program that ran to its end produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Its standard output, cut at the cap.
    pub stdout: Vec<u8>,
}

/// Why a program produced nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RunError {
    /// There is no such program (not on PATH, or no such file).
    NotFound,
    /// It could not be started or watched: the system's words, never the
    /// program's.
    Failed(String),
    /// It did not finish within this limit, and was stopped.
    TimedOut(Duration),
}

/// Runs `cmd` in a process group of its own, which is killed at `limit`, or
/// when the program has exited but its output is still held open (by a
/// child it left behind). Its standard input is `stdin` (nothing: /dev/null)
/// and its standard output is read, up to `cap` bytes; standard error is as
/// `cmd` has it (std's default is to inherit it).
pub fn run(mut cmd: Command, stdin: &[u8], limit: Duration, cap: u64) -> Result<Finished, RunError> {
    let started = Instant::now();
    cmd.process_group(0).stdin(if stdin.is_empty() { Stdio::null() } else { Stdio::piped() }).stdout(Stdio::piped());
    let mut child =
        cmd.spawn().map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { RunError::NotFound } else { RunError::Failed(e.kind().to_string()) })?;
    let group = rustix::process::Pid::from_child(&child);
    let kill_group = || {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    };
    if let Some(mut pipe) = child.stdin.take() {
        // On a thread: a program that does not read must not hold opm past
        // the limit. One that exits without reading is judged by its exit code.
        let input = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(cap).read_to_end(&mut out);
        let _ = sender.send(out);
    });
    let (mut output, mut exited) = (None, None);
    let (stdout, status) = loop {
        if exited.is_none() {
            exited = child.try_wait().map_err(|e| RunError::Failed(e.to_string()))?.map(|s| (s, Instant::now()));
        }
        if output.is_none() {
            match answer.recv_timeout(POLL) {
                Ok(out) => output = Some(out),
                Err(RecvTimeoutError::Disconnected) => output = Some(Vec::new()),
                Err(RecvTimeoutError::Timeout) => {}
            }
        } else {
            std::thread::sleep(POLL);
        }
        match (output.take(), exited) {
            (Some(out), Some((status, _))) => break (out, status),
            // The program is gone but its output is still open: what it
            // left behind is stopped, and what it said is read.
            (None, Some((status, at))) if at.elapsed() > LEFTOVERS => {
                kill_group();
                break (answer.recv_timeout(Duration::from_secs(1)).unwrap_or_default(), status);
            }
            _ if started.elapsed() >= limit => {
                kill_group();
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut(limit));
            }
            (out, _) => output = out,
        }
    };
    Ok(Finished { status, stdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]).stderr(Stdio::null());
        cmd
    }

    /// Whether the process whose pid is in `file` is still alive (and not a
    /// zombie awaiting its parent).
    fn alive(file: &std::path::Path) -> bool {
        let pid = std::fs::read_to_string(file).expect("the script wrote a pid");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        // The state follows the command's closing parenthesis.
        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    }

    #[test]
    fn output_and_status_come_back() {
        let done = run(sh("cat; echo; exit 3"), b"hello", Duration::from_secs(10), 1 << 20).unwrap();
        assert_eq!(done.stdout, b"hello\n");
        assert_eq!(done.status.code(), Some(3));
    }

    #[test]
    fn no_input_is_an_empty_stdin() {
        let done = run(sh("wc -c"), b"", Duration::from_secs(10), 1 << 20).unwrap();
        assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "0");
    }

    #[test]
    fn output_is_cut_at_the_cap() {
        let done = run(sh("printf 0123456789"), b"", Duration::from_secs(10), 4).unwrap();
        assert_eq!(done.stdout, b"0123");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let err = run(Command::new("/nonexistent/opm-no-such-program"), b"", Duration::from_secs(1), 1 << 20).unwrap_err();
        assert_eq!(err, RunError::NotFound);
    }

    #[test]
    fn a_program_that_hangs_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid.display());
        let started = Instant::now();
        let err = run(sh(&script), b"", Duration::from_millis(300), 1 << 20).unwrap_err();
        assert_eq!(err, RunError::TimedOut(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(&pid), "the program's child was left running");
    }

    #[test]
    fn a_child_left_holding_the_output_is_stopped_and_the_answer_read() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; printf answer", pid.display());
        let started = Instant::now();
        let done = run(sh(&script), b"", Duration::from_secs(20), 1 << 20).unwrap();
        assert_eq!(done.stdout, b"answer");
        assert!(done.status.success());
        assert!(started.elapsed() < Duration::from_secs(5), "waited for the child: {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(&pid), "the program's child was left running");
    }
}
