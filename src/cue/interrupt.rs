//! Ctrl-C (SIGINT), SIGTERM and SIGHUP end opm at once, as they always
//! did, except while a group of files is being written ([`hold`]): then
//! the signal waits until the group is in place, so an interrupted command
//! leaves the old files or the new ones, never one of each and never a
//! temporary file beside them. The process then dies of the signal itself,
//! so a shell sees what it always saw.
//!
//! It lives beside the FFI because the Go runtime shares the process: a
//! handler must run on the signal stack Go gives its threads
//! (`SA_ONSTACK`), or a signal landing on a Go thread can crash it.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// How many holds are open (they nest: a commit holds around its atomic
/// writes, which hold too).
static HELD: AtomicUsize = AtomicUsize::new(0);
/// The signal that arrived during a hold (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// While the returned guard lives, the signals above are deferred.
#[must_use = "signals are deferred only while the guard lives"]
pub fn hold() -> Hold {
    INSTALL.call_once(install);
    HELD.fetch_add(1, SeqCst);
    Hold(())
}

pub struct Hold(());

impl Drop for Hold {
    fn drop(&mut self) {
        // Released first, then looked at: a handler that stored its signal
        // after this load sees no hold and ends the process itself.
        if HELD.fetch_sub(1, SeqCst) == 1 {
            let sig = PENDING.load(SeqCst);
            if sig != 0 {
                die(sig);
            }
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Stored first, then the holds looked at (see `Drop`): only atomics
    // and async-signal-safe calls here.
    PENDING.store(sig, SeqCst);
    if HELD.load(SeqCst) == 0 {
        die(sig);
    }
}

/// Ends the process of `sig`, as it would have without a handler.
fn die(sig: libc::c_int) {
    // SAFETY: signal(2) and raise(3) are async-signal-safe; with the
    // default action back, raise terminates the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install() {
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler touches only atomics and async-signal-safe calls.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            // A signal the parent ignores (nohup, a background job) stays
            // ignored.
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::path::Path;

    const CHILD: &str = "OPM_INTERRUPT_TEST_DIR";

    /// Runs `name` (this test) again in a child process with `dir` set.
    fn child(name: &str, dir: &Path) -> std::process::ExitStatus {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(CHILD, dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    }

    fn interrupt_self(sig: libc::c_int) {
        // SAFETY: a signal to this process, as a terminal sends it.
        unsafe { libc::kill(libc::getpid(), sig) };
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    #[test]
    fn a_signal_during_a_hold_waits_for_its_end_then_ends_the_process() {
        if let Some(dir) = std::env::var_os(CHILD) {
            let dir = Path::new(&dir);
            let held = super::hold();
            let inner = super::hold();
            interrupt_self(libc::SIGTERM);
            drop(inner);
            std::fs::write(dir.join("written"), "").unwrap();
            drop(held);
            std::fs::write(dir.join("after"), "").unwrap();
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().unwrap();
        let status = child("cue::interrupt::tests::a_signal_during_a_hold_waits_for_its_end_then_ends_the_process", dir.path());
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        assert!(dir.path().join("written").exists(), "the held work was finished");
        assert!(!dir.path().join("after").exists(), "nothing ran after the hold");
    }

    #[test]
    fn outside_a_hold_a_signal_ends_the_process_at_once() {
        if let Some(dir) = std::env::var_os(CHILD) {
            drop(super::hold());
            interrupt_self(libc::SIGINT);
            std::fs::write(Path::new(&dir).join("after"), "").unwrap();
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().unwrap();
        let status = child("cue::interrupt::tests::outside_a_hold_a_signal_ends_the_process_at_once", dir.path());
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
        assert!(!dir.path().join("after").exists());
    }
}
