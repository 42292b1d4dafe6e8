//! Progress reporting from the core to whoever draws it.
//!
//! Long operations take a `&dyn Progress`. The default, [`Silent`], draws nothing; the command
//! line supplies a bar when stderr is a terminal. Implementations must be cheap and thread-safe:
//! rayon workers call `advance` concurrently.

/// Receives progress of one operation at a time.
pub trait Progress: Sync {
    /// A stage begins; `total` is its size in `unit`s when known in advance.
    fn start(&self, _stage: &str, _total: Option<u64>, _unit: Unit) {}
    /// The stage's total became known after it started.
    fn set_total(&self, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// A line worth showing above the bar (a skipped file, say).
    fn note(&self, _message: &str) {}
    /// The stage is over.
    fn finish(&self) {}
}

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, shown as KiB, MiB, …
    Bytes,
    /// Files, folders, records: a plain count.
    Items,
}

/// Draws nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}
