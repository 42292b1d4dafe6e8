//! The end-to-end tests across the workspace's binaries, in one test binary (`tests/it`), as
//! ripgrep and gitoxide have theirs: one link per crate instead of one per file. Each module was a
//! file of its own in `tests/`; their tests now share this process and run in its threads, so none
//! sets process-wide state.

mod bad_input;
mod interrupted;
mod output;
mod readme;
mod real_installs;
mod runbook;
