//! kc-backup's integration tests, in one test binary (`tests/it`), as ripgrep and gitoxide have
//! theirs: one link per crate instead of one per file. Each module was a file of its own in
//! `tests/`; their tests now share this process and run in its threads, so none sets process-wide
//! state, and one that starts a live `mailserver` process holds its turn alone
//! (`kc_testkit::Scratch::alone`): every tool run on the machine sees it.

mod backup;
mod running;
mod undo;
