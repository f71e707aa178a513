//! Captured tracing output for tests that check what is logged.
//!
//! [`Logs::install`] routes every event on the current thread into a
//! buffer until its guard drops; run such a test on `#[tokio::test]`'s
//! current-thread runtime so the subscriber sees every event.

#![allow(dead_code, reason = "each test crate uses a subset")]

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;

/// Everything the tracing subscriber wrote, as text (no timestamps, no
/// colours: `LEVEL target: message fields`).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Routes every event at every level on this thread into the buffer
    /// until the guard drops.
    pub(crate) fn install(&self) -> DefaultGuard {
        // While at most one dispatcher exists, tracing decides whether a
        // callsite is of interest by asking the default dispatcher of the
        // thread that reaches it first, and caches the answer: a test
        // thread without a subscriber reaching a callsite first would hide
        // its events from this one. A second dispatcher, kept for the
        // process, makes tracing ask every dispatcher.
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// All of it.
    pub(crate) fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The lines at `level` (`"WARN"`, `"ERROR"`) on a target starting with `target`.
    pub(crate) fn lines(&self, level: &str, target: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(level) && words.next().is_some_and(|t| t.starts_with(target))
            })
            .map(str::to_owned)
            .collect()
    }
}
