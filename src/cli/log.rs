//! Renders the events the lower layers emit through `tracing`: warnings
//! always (as status lines, unless -q), every debug event of opm with -v
//! (each registry request: what, where, outcome, time, retries; where
//! credentials come from, never the secret). Spans (one per command, one
//! per registry request) give events their place; this renderer prints
//! only the events.

use crate::ui;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

/// Installs the renderer for this process (once, before any event).
pub fn install(verbose: bool) {
    let _ = tracing::subscriber::set_global_default(Log { verbose, next_span: AtomicU64::new(1) });
}

struct Log {
    verbose: bool,
    next_span: AtomicU64,
}

impl tracing::Subscriber for Log {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("opm") && (*m.level() <= Level::WARN || (self.verbose && *m.level() <= Level::DEBUG))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if *event.metadata().level() <= Level::WARN {
            ui::print_status(&format!("warning: {}", message.0));
        } else {
            ui::verbose(&message.0);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's text: its message, then any other fields as `name=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
