//! How far a transfer is, as the registry counts it. Whoever started the
//! transfer is told of every change through a plain callback and renders
//! it (cli/ draws a progress bar on a terminal); the registry draws nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What the watcher of a transfer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Bytes (or items) done of the total known so far.
    Moved { position: u64, length: u64 },
    /// The transfer is over: stop showing it.
    Done,
}

/// A watcher: called on every change, from any thread.
pub type Watch = Box<dyn Fn(Event) + Send + Sync>;

/// Cheap to clone: the clones count together.
#[derive(Clone, Default)]
pub struct Progress(Arc<Counts>);

#[derive(Default)]
struct Counts {
    position: AtomicU64,
    length: AtomicU64,
    watch: Option<Watch>,
}

impl Progress {
    /// A transfer of `length` (more may be announced), told to `watch`.
    pub fn watched(length: u64, watch: Watch) -> Progress {
        Progress(Arc::new(Counts { position: AtomicU64::new(0), length: AtomicU64::new(length), watch: Some(watch) }))
    }

    /// A transfer nobody watches.
    pub fn none() -> Progress {
        Progress::default()
    }

    pub fn inc(&self, n: u64) {
        self.0.position.fetch_add(n, Relaxed);
        self.tell();
    }

    /// More to transfer than was known.
    pub fn inc_length(&self, n: u64) {
        self.0.length.fetch_add(n, Relaxed);
        self.tell();
    }

    pub fn position(&self) -> u64 {
        self.0.position.load(Relaxed)
    }

    /// Back to `position` (a try that failed is counted again).
    pub fn set_position(&self, position: u64) {
        self.0.position.store(position, Relaxed);
        self.tell();
    }

    /// The transfer is over.
    pub fn done(&self) {
        if let Some(watch) = &self.0.watch {
            watch(Event::Done);
        }
    }

    fn tell(&self) {
        if let Some(watch) = &self.0.watch {
            watch(Event::Moved { position: self.0.position.load(Relaxed), length: self.0.length.load(Relaxed) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, Progress};
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_watcher_sees_every_change() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let p = Progress::watched(10, Box::new(move |e| log.lock().unwrap().push(e)));
        p.inc(4);
        p.clone().inc_length(5);
        p.set_position(1);
        p.done();
        let moved = |position, length| Event::Moved { position, length };
        assert_eq!(*seen.lock().unwrap(), vec![moved(4, 10), moved(4, 15), moved(1, 15), Event::Done]);
        Progress::none().inc(3);
    }
}
