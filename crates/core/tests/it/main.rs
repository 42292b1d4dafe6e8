//! kc-core's integration tests, in one test binary (`tests/it`) laid out as every crate of the
//! workspace has its own: a module per former file of `tests/`.

mod guard;
