//! Compresses a file (a tar of a store) in 4 MiB pieces, each its own gzip member as kc-backup
//! writes them, with zlib-rs (flate2) and libdeflate at levels 1-8 on one thread, and prints each
//! one's size and time: how kc-backup's gzip library and level were chosen (BENCHMARKS.md,
//! issue 15). Compare with `pigz -p 1 -6 -c FILE | wc -c` and its user time.
//!
//! `cargo run --release -p kc-core --example deflate-levels -- <file>`

use std::io::Write;
use std::time::Instant;

type Compress = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: deflate-levels <file>")?;
    let data = fs_err::read(&path)?;
    let mut options: Vec<(String, Compress)> = Vec::new();
    for level in 1..=6u32 {
        options.push((
            format!("zlib-rs {level}"),
            Box::new(move |piece: &[u8]| {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                e.write_all(piece)?;
                Ok(e.finish()?)
            }),
        ));
    }
    for level in 1..=8 {
        options.push((
            format!("libdeflate {level}"),
            Box::new(move |piece: &[u8]| {
                let lvl = libdeflater::CompressionLvl::new(level).map_err(|e| format!("{e:?}"))?;
                let mut c = libdeflater::Compressor::new(lvl);
                let mut out = vec![0u8; c.gzip_compress_bound(piece.len())];
                let n = c
                    .gzip_compress(piece, &mut out)
                    .map_err(|e| format!("{e:?}"))?;
                out.truncate(n);
                Ok(out)
            }),
        ));
    }
    println!("{} bytes in", data.len());
    for (name, compress) in &options {
        let start = Instant::now();
        let mut size = 0;
        for piece in data.chunks(4 << 20) {
            size += compress(piece)?.len();
        }
        println!(
            "{name:14} {size:>12} bytes {:8.3} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
