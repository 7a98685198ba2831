//! `paw build --events jsonl`: every event of a run as one JSON object per line on stdout, for CI
//! and other programs, while the human output goes to stderr. The lines are the engine's
//! (`paw_core::engine::event_line`); `schema/events-v1.json` describes every type, and the README
//! lists them.

use std::io::Write as _;
use std::sync::Mutex;

use paw_core::engine::{Event, Reporter, RunEvent, event_line};
use serde_json::Value;

pub struct EventStream {
    /// Each of packer's lines as a `packer_line` event (`--events-packer`).
    packer_lines: bool,
    out: Mutex<std::io::Stdout>,
}

impl EventStream {
    pub fn new(packer_lines: bool) -> EventStream {
        EventStream { packer_lines, out: Mutex::new(std::io::stdout()) }
    }

    /// Writes one event: `kind`, of `label`'s step (`variant/step` for a variant's; None for the
    /// run's own events), with `fields`.
    fn emit(&self, kind: &str, label: Option<&str>, fields: Value) {
        let line = event_line(kind, label, fields);
        let mut out = self.out.lock().expect("the event stream is not poisoned");
        // A reader that went away (a closed pipe) does not stop the build.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

impl Reporter for EventStream {
    fn event(&self, event: Event<'_>) {
        if matches!(event, Event::Packer { .. }) && !self.packer_lines {
            return;
        }
        let (kind, fields) = event.record();
        self.emit(kind, Some(event.step()), fields);
    }

    fn run_event(&self, event: &RunEvent<'_>) {
        let (kind, fields) = event.record();
        self.emit(kind, None, fields);
    }
}
