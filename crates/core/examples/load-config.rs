//! Loads an install's config files and says how long it took: the benchmark of the config model.
//!
//! `cargo run --release -p kc-core --example load-config -- <root>`

use std::time::Instant;

use kc_core::config::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args_os()
        .nth(1)
        .ok_or("usage: load-config <install root>")?;
    let start = Instant::now();
    let config = Config::load(std::path::Path::new(&root))?;
    let loaded = start.elapsed();
    let users = config.users().count();
    let enabled = config.users().filter(|u| u.enabled()).count();
    let bytes = config.users.to_bytes();
    let total = start.elapsed();
    println!(
        "users={users} enabled={enabled} users.cfg={} bytes load={:.3}s load+views+serialise={:.3}s",
        bytes.len(),
        loaded.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}
