//! Progress of long work (hashing, copying weights, compiling kernels): the
//! library reports stages through [`Progress`]; [`Bars`] draws them with
//! indicatif on stderr, and draws nothing when stderr is not a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

/// Receives the stages of a long operation, one at a time.
pub trait Progress: Sync {
    /// A stage of `total` units starts (the previous one is over).
    fn begin(&self, what: &str, total: u64, unit: Unit);
    fn advance(&self, n: u64);
    /// The current stage is over.
    fn end(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64, _: Unit) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// One indicatif bar per stage on stderr (hidden when not a terminal).
#[derive(Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars::default()
    }

    fn with(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        f(&mut self.bar.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl Progress for Bars {
    fn begin(&self, what: &str, total: u64, unit: Unit) {
        let template = match unit {
            Unit::Bytes => "{msg:>18} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            Unit::Items => "{msg:>18} [{bar:30}] {pos}/{len} ({eta})",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(what.to_string());
        self.with(|slot| {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        });
    }

    fn advance(&self, n: u64) {
        self.with(|slot| {
            if let Some(b) = slot {
                b.inc(n);
            }
        });
    }

    fn end(&self) {
        self.with(|slot| {
            if let Some(b) = slot.take() {
                b.finish_and_clear();
            }
        });
    }
}
