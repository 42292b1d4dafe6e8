//! The root package holds only the end-to-end tests in `tests/`, which drive the real binaries
//! of the workspace through an admin's runbook. It has no code of its own.
