//! Lists of paths larger than memory: sorted in runs of a bounded size, spilled to unnamed
//! temporary files, and merged back, in the order of the backup's walk.
//!
//! A differential compares its walk with the base's manifest. The manifest is nearly in walk
//! order (a file split across chunks is listed when its last piece is written, after the files
//! of that chunk), so it is sorted here, on disk, and then read in step with the walk: a merge
//! join whose memory does not grow with the number of files.
//!
//! The budget of one in-memory run is [`budget`]: 8 MiB of paths, or less when the environment
//! variable `KC_SORT_BUDGET` (bytes) says so. It can only lower it: the tests set it to a few
//! bytes, so that every list, however short, goes through the spill and merge.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{ArchiveError, io_err};

/// Bytes of paths an in-memory run holds at most, by default.
const DEFAULT_BUDGET: usize = 8 << 20;

/// Runs merged at once. Runs are kept in tiers: every FAN_IN runs of one tier are merged into
/// one of the next as soon as they are there, so a sort holds at most FAN_IN open files per tier
/// (a handful of tiers for any store), not one per run.
const FAN_IN: usize = 32;

/// The in-memory budget of one run, in bytes (see the module docs).
pub(crate) fn budget() -> usize {
    std::env::var("KC_SORT_BUDGET")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(DEFAULT_BUDGET, |b| b.clamp(1, DEFAULT_BUDGET))
}

/// The walk's order as a byte key: depth first, names sorted bytewise, is the order of the
/// paths with `/` read as the lowest byte (a path's name ends before any longer name it starts).
/// A store outside the install root is walked last, as `store/`: its paths get a higher first
/// byte. NUL never appears in a path, so `/` becomes NUL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkOrder {
    pub store_last: bool,
}

impl WalkOrder {
    pub(crate) fn key(self, path: &[u8]) -> Vec<u8> {
        let store = self.store_last
            && path
                .strip_prefix(b"store")
                .is_some_and(|rest| rest.is_empty() || rest[0] == b'/');
        let mut key = Vec::with_capacity(path.len() + 1);
        key.push(u8::from(store));
        key.extend(path.iter().map(|&b| if b == b'/' { 0 } else { b }));
        key
    }

    /// The path a key was made from.
    pub(crate) fn path(key: &[u8]) -> Vec<u8> {
        key.iter()
            .skip(1)
            .map(|&b| if b == 0 { b'/' } else { b })
            .collect()
    }
}

/// Sorts byte strings in runs of at most `budget` bytes, spilled to temporary files in `dir`.
pub(crate) struct Sorter {
    dir: PathBuf,
    budget: usize,
    run: Vec<Vec<u8>>,
    bytes: usize,
    /// Spilled runs, each with its tier (0: spilled from memory; n + 1: FAN_IN of tier n merged).
    runs: Vec<(u32, std::fs::File)>,
}

impl Sorter {
    pub(crate) fn new(dir: &Path, budget: usize) -> Sorter {
        Sorter {
            dir: dir.to_owned(),
            budget,
            run: Vec::new(),
            bytes: 0,
            runs: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: Vec<u8>) -> Result<(), ArchiveError> {
        // A Vec's own size counts too: a budget of short paths is mostly their headers.
        self.bytes += item.len() + std::mem::size_of::<Vec<u8>>();
        self.run.push(item);
        if self.bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn temp(&self) -> Result<std::fs::File, ArchiveError> {
        // Unnamed: gone when closed, whatever stops the process.
        tempfile::tempfile_in(&self.dir).map_err(io_err(&self.dir))
    }

    fn spill(&mut self) -> Result<(), ArchiveError> {
        if self.run.is_empty() {
            return Ok(());
        }
        self.run.sort_unstable();
        let mut out = BufWriter::with_capacity(1 << 16, self.temp()?);
        for item in self.run.drain(..) {
            write_record(&mut out, &item).map_err(io_err(&self.dir))?;
        }
        self.bytes = 0;
        self.runs
            .push((0, finish_run(out).map_err(io_err(&self.dir))?));
        while self.runs.len() >= FAN_IN {
            let tail = self.runs.len() - FAN_IN;
            let tier = self.runs[tail].0;
            if self.runs[tail..].iter().any(|(t, _)| *t != tier) {
                break;
            }
            let group = self.runs.drain(tail..).map(|(_, f)| f).collect();
            let merged = self.merge_into_run(group)?;
            self.runs.push((tier + 1, merged));
        }
        Ok(())
    }

    /// Merges runs into one new run.
    fn merge_into_run(&self, group: Vec<std::fs::File>) -> Result<std::fs::File, ArchiveError> {
        let mut out = BufWriter::with_capacity(1 << 16, self.temp()?);
        for item in Merge::new(group, &self.dir)? {
            write_record(&mut out, &item?).map_err(io_err(&self.dir))?;
        }
        finish_run(out).map_err(io_err(&self.dir))
    }

    /// Everything pushed, in order.
    pub(crate) fn finish(mut self) -> Result<Sorted, ArchiveError> {
        if self.runs.is_empty() {
            self.run.sort_unstable();
            return Ok(Sorted::Memory(std::mem::take(&mut self.run).into_iter()));
        }
        self.spill()?;
        let mut runs: Vec<std::fs::File> = self.runs.drain(..).map(|(_, f)| f).collect();
        while runs.len() > FAN_IN {
            let mut merged = Vec::new();
            let mut it = runs.into_iter().peekable();
            while it.peek().is_some() {
                let group = it.by_ref().take(FAN_IN).collect();
                merged.push(self.merge_into_run(group)?);
            }
            runs = merged;
        }
        Ok(Sorted::Merge(Merge::new(runs, &self.dir)?))
    }
}

fn write_record(out: &mut impl Write, item: &[u8]) -> std::io::Result<()> {
    let len =
        u32::try_from(item.len()).map_err(|_| std::io::Error::other("a path longer than 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(item)
}

fn finish_run(out: BufWriter<std::fs::File>) -> std::io::Result<std::fs::File> {
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(file)
}

/// One spilled run, read back a record at a time.
struct Run {
    input: BufReader<std::fs::File>,
}

impl Run {
    fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len)?;
        let mut item = vec![0u8; u32::from_le_bytes(len) as usize];
        self.input.read_exact(&mut item)?;
        Ok(Some(item))
    }
}

/// The runs merged: the smallest head first.
pub(crate) struct Merge {
    dir: PathBuf,
    runs: Vec<Run>,
    heads: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Merge {
    fn new(files: Vec<std::fs::File>, dir: &Path) -> Result<Merge, ArchiveError> {
        let mut merge = Merge {
            dir: dir.to_owned(),
            runs: files
                .into_iter()
                .map(|f| Run {
                    input: BufReader::with_capacity(1 << 16, f),
                })
                .collect(),
            heads: BinaryHeap::new(),
        };
        for i in 0..merge.runs.len() {
            if let Some(item) = merge.runs[i].next().map_err(io_err(dir))? {
                merge.heads.push(Reverse((item, i)));
            }
        }
        Ok(merge)
    }
}

impl Iterator for Merge {
    type Item = Result<Vec<u8>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((item, i)) = self.heads.pop()?;
        match self.runs[i].next() {
            Ok(Some(next)) => self.heads.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => return Some(Err(io_err(&self.dir)(e))),
        }
        Some(Ok(item))
    }
}

/// A sorted list: still in memory when it fitted the budget, else merged from disk.
pub(crate) enum Sorted {
    Memory(std::vec::IntoIter<Vec<u8>>),
    Merge(Merge),
}

impl Iterator for Sorted {
    type Item = Result<Vec<u8>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Sorted::Memory(it) => it.next().map(Ok),
            Sorted::Merge(m) => m.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_keys_sort_as_the_walk_goes() {
        // Depth first, names bytewise: `a` and everything below it before `a.x`.
        let walk: [&[u8]; 6] = [b"a", b"a/b", b"a/b/c", b"a/c", b"a.x", b"b"];
        let order = WalkOrder { store_last: false };
        let keys: Vec<Vec<u8>> = walk.iter().map(|p| order.key(p)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert_eq!(WalkOrder::path(&keys[2]), b"a/b/c");
        // A store outside the root comes after the root's own entries.
        let order = WalkOrder { store_last: true };
        assert!(order.key(b"store/mail") > order.key(b"users.cfg"));
        assert!(order.key(b"storex") < order.key(b"users.cfg"));
    }

    #[test]
    fn spilled_runs_merge_into_one_sorted_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Pseudo-random names, many more runs than one merge takes.
        let items: Vec<Vec<u8>> = (0u64..2000)
            .map(|i| format!("{:08}", i.wrapping_mul(2_654_435_761) % 1_000_003).into_bytes())
            .collect();
        for budget in [1, 100, 1 << 20] {
            let mut sorter = Sorter::new(dir.path(), budget);
            for item in &items {
                sorter.push(item.clone()).expect("push");
            }
            // 2000 runs at budget 1, held as a few tiers: open files stay bounded.
            assert!(
                sorter.runs.len() < 2 * FAN_IN,
                "{} runs open",
                sorter.runs.len()
            );
            let out: Vec<Vec<u8>> = sorter
                .finish()
                .expect("finish")
                .collect::<Result<_, _>>()
                .expect("read back");
            let mut want = items.clone();
            want.sort();
            assert_eq!(out, want, "budget {budget}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "no temporary file left"
        );
    }
}
