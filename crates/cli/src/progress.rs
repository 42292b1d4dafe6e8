//! The progress bar: indicatif on stderr, drawn only when [`crate::Settings::progress`] allows.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kc_core::progress::{Progress, Unit};

/// A [`Progress`] that draws a bar on stderr, or nothing when disabled; with `timings`, it also
/// says how long each stage took (`-v`).
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    timings: Option<std::sync::Mutex<(String, std::time::Instant)>>,
}

impl Bar {
    pub fn new(enabled: bool, timings: bool) -> Bar {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bar {
            bar: ProgressBar::with_draw_target(None, target),
            timings: timings
                .then(|| std::sync::Mutex::new((String::new(), std::time::Instant::now()))),
        }
    }
}

impl Progress for Bar {
    fn start(&self, stage: &str, total: Option<u64>, unit: Unit) {
        let template = match (unit, total.is_some()) {
            (Unit::Bytes, true) => {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
            }
            (Unit::Bytes, false) => "{spinner} {msg} {bytes} {binary_bytes_per_sec}",
            (Unit::Items, true) => "{msg} [{bar:30}] {pos}/{len} ETA {eta}",
            (Unit::Items, false) => "{spinner} {msg} {pos}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        if let Some(t) = &self.timings
            && let Ok(mut t) = t.lock()
        {
            *t = (stage.to_owned(), std::time::Instant::now());
        }
        self.bar.reset();
        self.bar.set_length(total.unwrap_or(0));
        self.bar.set_message(stage.to_owned());
    }

    fn set_total(&self, total: u64) {
        self.bar.set_length(total);
        let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("{message}"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(t) = &self.timings
            && let Ok(t) = t.lock()
        {
            eprintln!("{}: {:.2} s", t.0, t.1.elapsed().as_secs_f64());
        }
    }
}
