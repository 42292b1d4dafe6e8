//! Reading backups: verify (every chunk decompressed and every file re-hashed, on all cores),
//! verify against the live tree, and restore (a chain of full + differential, selectively,
//! never writing outside the target).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::{ArchiveError, Backup, ChunkMeta, Compression, decode_path, manifest};
use crate::config::schema::is_config_file;
use crate::progress::{Progress, Unit};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Files checked against the manifest.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Each problem, first found first; empty when the backup is whole.
    pub damage: Vec<String>,
    /// Symbolic links whose target is outside the install (absolute, or `..` past the root).
    /// Not damage: restore puts them back as links and never writes through one.
    pub links_out: Vec<String>,
}

/// One chunk, checked by a worker.
#[derive(Default)]
struct Checked {
    /// The bytes that continue a file begun in an earlier chunk.
    lead: Vec<u8>,
    files: Vec<(Vec<u8>, String, u64)>,
    /// A file that goes on past this chunk: path, size, its bytes so far.
    tail: Option<(Vec<u8>, u64, Vec<u8>)>,
    damage: Vec<String>,
    links_out: Vec<String>,
    /// Every entry's path in order, and whether it is a symbolic link: for the check that no
    /// entry lies below a link of the same archive.
    order: Vec<(Vec<u8>, bool)>,
}

/// The most tar one chunk may declare: chunks are cut at a few MiB, and a chunk that says more
/// is not one of ours (a hostile `.json` must not make us allocate what it likes).
const MAX_CHUNK_TAR: u64 = 256 << 20;

/// Decompresses a chunk, reading at most one byte more than `expected`: a chunk that inflates
/// to more than its index says is damage, found without inflating it whole.
fn decompress(data: &[u8], compression: Compression, expected: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected.min(MAX_CHUNK_TAR) as usize);
    let limit = expected + 1;
    match compression {
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data)?
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// An archive path as messages show it: its control characters (a line break, a tab) escaped,
/// as every message of the tools shows a name, so that a path cannot make a line of its own.
pub(crate) fn shown(path: &[u8]) -> String {
    crate::change::printable(&String::from_utf8_lossy(path)).into_owned()
}

/// Whether an archive path could land outside the directory it is extracted into.
pub(crate) fn unsafe_path(path: &[u8]) -> bool {
    let p = Path::new(OsStr::from_bytes(path));
    p.is_absolute()
        || p.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::Prefix(_) | Component::RootDir
            )
        })
}

/// Reads and decompresses one chunk, checking the format's own checksum and the length the
/// index gives; an error names the chunk and says what is wrong.
fn read_chunk(
    archive: &Path,
    i: usize,
    chunk: ChunkMeta,
    compression: Compression,
) -> Result<Vec<u8>, String> {
    let damaged = |what: String| {
        format!(
            "chunk {i} (bytes {}..{} of the archive): {what}",
            chunk.offset,
            chunk.offset.saturating_add(chunk.length)
        )
    };
    let file = std::fs::File::open(archive).map_err(|e| damaged(format!("cannot read: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| damaged(format!("cannot read: {e}")))?
        .len();
    if chunk
        .offset
        .checked_add(chunk.length)
        .is_none_or(|end| end > size)
    {
        return Err(damaged(format!(
            "the index places it past the archive's end ({size} bytes)"
        )));
    }
    if chunk.tar_length > MAX_CHUNK_TAR || chunk.length > MAX_CHUNK_TAR {
        return Err(damaged(format!(
            "the index declares {} bytes of tar, more than a chunk ever holds",
            chunk.tar_length
        )));
    }
    let mut data = vec![0u8; chunk.length as usize];
    file.read_exact_at(&mut data, chunk.offset)
        .map_err(|e| damaged(format!("cannot read: {e}")))?;
    match decompress(&data, compression, chunk.tar_length) {
        Ok(t) if t.len() as u64 == chunk.tar_length => Ok(t),
        // A changed bit inside the compressed data makes it inflate to another length, found
        // before the checksum at its end is read: inflated whole (up to the most a chunk may
        // hold), the checksum says what the damage is.
        Ok(t) => Err(damaged(
            match decompress(&data, compression, MAX_CHUNK_TAR) {
                Err(e) => format!("corrupt, its checksum does not match: {e}"),
                Ok(_) => format!(
                    "holds {} bytes of tar, the index says {}",
                    t.len(),
                    chunk.tar_length
                ),
            },
        )),
        Err(e) => Err(damaged(format!("does not decompress: {e}"))),
    }
}

/// One job per chunk of the backup, each doing `work` on it; a result comes with the chunk's
/// compressed length, for progress.
fn chunk_jobs<T: Send + 'static>(
    backup: &Backup,
    work: fn(&Path, usize, ChunkMeta, Compression) -> T,
) -> Vec<impl FnOnce() -> (u64, T) + Send + 'static> {
    let archive = Arc::new(backup.archive.clone());
    let compression = backup.meta.compression;
    let jobs = backup.meta.chunks.iter().enumerate().map(|(i, &chunk)| {
        let archive = Arc::clone(&archive);
        move || (chunk.length, work(&archive, i, chunk, compression))
    });
    jobs.collect()
}

/// The check right after writing: every chunk reads back, decompresses, passes its format's
/// checksum (gzip CRC-32, zstd frame checksum) and has the length recorded. The files' SHA-256
/// were taken from the very bytes that went into the tar; `verify` re-hashes them.
pub(crate) fn check_chunks(
    backup: &Backup,
    progress: &dyn Progress,
) -> Result<Vec<String>, ArchiveError> {
    progress.start("checking", Some(backup.meta.archive_bytes), Unit::Bytes);
    let jobs = chunk_jobs(backup, |archive, i, chunk, compression| {
        read_chunk(archive, i, chunk, compression).err()
    })
    .into_iter();
    let mut damage = Vec::new();
    super::pipeline::in_order(
        jobs,
        super::pipeline::default_in_flight(),
        |(length, problem)| {
            progress.advance(length);
            damage.extend(problem);
            Ok::<(), ArchiveError>(())
        },
    )?;
    progress.finish();
    Ok(damage)
}

fn check_chunk(archive: &Path, i: usize, chunk: ChunkMeta, compression: Compression) -> Checked {
    let mut checked = Checked::default();
    let tar = match read_chunk(archive, i, chunk, compression) {
        Ok(t) => t,
        Err(problem) => {
            checked.damage.push(problem);
            return checked;
        }
    };
    let lead = (chunk.lead as usize).min(tar.len());
    checked.lead = tar[..lead].to_vec();
    let mut reader = tar::Archive::new(&tar[lead..]);
    let entries = match reader.entries() {
        Ok(e) => e,
        Err(e) => {
            checked.damage.push(format!("chunk {i}: {e}"));
            return checked;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                checked
                    .damage
                    .push(format!("chunk {i}: bad tar entry: {e}"));
                break;
            }
        };
        let path = entry.path_bytes().into_owned();
        if unsafe_path(&path) {
            checked
                .damage
                .push(format!("{}: an unsafe path in the archive", shown(&path)));
        }
        let kind = entry.header().entry_type();
        checked.order.push((path.clone(), kind.is_symlink()));
        if kind.is_hard_link() {
            checked.damage.push(format!(
                "{}: a hard link (kc-backup never writes them)",
                shown(&path)
            ));
        }
        if kind.is_symlink() && is_config_file(&path) {
            checked.damage.push(format!(
                "{}: a config file stored as a symbolic link (kc-backup stores their content)",
                shown(&path)
            ));
        }
        if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            let target = target.as_deref().unwrap_or_default();
            if !link_stays_inside(&path, Path::new(OsStr::from_bytes(target))) {
                checked.links_out.push(format!(
                    "{}: a symbolic link that leads out of the install (-> {})",
                    shown(&path),
                    shown(target)
                ));
            }
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let start = lead + entry.raw_file_position() as usize;
        let end = start + size as usize;
        if end <= tar.len() {
            checked.files.push((
                path,
                format!("{:x}", Sha256::digest(&tar[start..end])),
                size,
            ));
        } else {
            checked.tail = Some((path, size, tar[start..].to_vec()));
            break;
        }
    }
    checked
}

/// Verifies a backup: every chunk decompresses, every file's SHA-256 matches the manifest, and
/// the manifest lists exactly the archive's files.
pub fn verify(backup: &Backup, progress: &dyn Progress) -> Result<VerifyReport, ArchiveError> {
    let mut expected = Matcher::new(&backup.manifest_path())?;
    let mut report = VerifyReport::default();
    // The archive's symbolic links, to find entries (and deletions) below one: restoring them
    // would write through the link.
    let mut links: HashSet<Vec<u8>> = HashSet::new();
    progress.start("verifying", Some(backup.meta.archive_bytes), Unit::Bytes);
    let jobs = chunk_jobs(backup, check_chunk).into_iter();
    // A file split across chunks: path, size, bytes still to come, hasher.
    let mut pending: Option<(Vec<u8>, u64, u64, Sha256)> = None;
    let mut record = |report: &mut VerifyReport, path: Vec<u8>, digest: String, size: u64| {
        report.files += 1;
        report.bytes += size;
        expected.record(path, digest, &mut report.damage)
    };
    super::pipeline::in_order(
        jobs,
        super::pipeline::default_in_flight(),
        |(length, checked)| -> Result<(), ArchiveError> {
            progress.advance(length);
            report.damage.extend(checked.damage);
            report.links_out.extend(checked.links_out);
            for (path, is_link) in checked.order {
                let trimmed = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
                if below_link(&links, &path) || (!is_link && links.contains(&trimmed)) {
                    report.damage.push(format!(
                        "{}: lies at or below a symbolic link of the same archive",
                        shown(&path)
                    ));
                }
                if is_link {
                    links.insert(trimmed);
                }
            }
            // A split file ends in this chunk: the writer lists it after the chunk's own files,
            // and so does this, so that the manifest is read in step.
            let mut ended = None;
            if let Some((path, size, remaining, mut hasher)) = pending.take() {
                let take = (remaining as usize).min(checked.lead.len());
                hasher.update(&checked.lead[..take]);
                if take as u64 == remaining {
                    ended = Some((path, format!("{:x}", hasher.finalize()), size));
                } else {
                    pending = Some((path, size, remaining - take as u64, hasher));
                }
            }
            for (path, digest, size) in checked.files {
                record(&mut report, path, digest, size)?;
            }
            if let Some((path, digest, size)) = ended {
                record(&mut report, path, digest, size)?;
            }
            if let Some((path, size, data)) = checked.tail {
                let mut hasher = Sha256::new();
                hasher.update(&data);
                pending = Some((path, size, size - data.len() as u64, hasher));
            }
            Ok(())
        },
    )?;
    progress.finish();
    if let Some((path, ..)) = pending {
        report
            .damage
            .push(format!("{}: the archive ends inside it", shown(&path)));
    }
    report.damage.extend(deletion_damage(backup, &links));
    report.damage.extend(size_damage(backup));
    expected.finish(&mut report.damage)?;
    Ok(report)
}

/// Whether a path lies below one of the archive's symbolic links.
fn below_link(links: &HashSet<Vec<u8>>, path: &[u8]) -> bool {
    !links.is_empty()
        && path
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && links.contains(&path[..i]))
}

/// The deletions a restore must refuse: outside the install, below a link of the archive, of a
/// config file or of the toolkit's own files.
fn deletion_damage(backup: &Backup, links: &HashSet<Vec<u8>>) -> Vec<String> {
    let bad = |path: &[u8]| unsafe_path(path) || below_link(links, path) || protected(path);
    let paths = backup.meta.deleted.iter().map(|p| decode_path(p));
    paths
        .filter(|path| bad(path))
        .map(|path| format!(
            "{}: a deletion outside the install, below a symbolic link, or of a config file or the toolkit's own files",
            shown(&path)
        ))
        .collect()
}

/// The archive is exactly as long as its index says: bytes appended after the last chunk (a
/// gzip member, garbage) or cut from it are damage, although every chunk reads.
fn size_damage(backup: &Backup) -> Option<String> {
    let end = (backup.meta.chunks.last()).map_or(0, |c| c.offset.saturating_add(c.length));
    let size = match std::fs::metadata(&backup.archive) {
        Ok(m) => m.len(),
        Err(e) => return Some(format!("{}: cannot read: {e}", backup.archive.display())),
    };
    (size != end || size != backup.meta.archive_bytes).then(|| {
        format!(
            "{}: is {size} bytes, but its index ends at byte {end} and its record says {}: bytes were added to it or cut from it",
            backup.archive.display(),
            backup.meta.archive_bytes
        )
    })
}

/// A manifest line, read: the end, one that matched a file set aside, or one still open (path,
/// digest).
enum Line {
    End,
    Settled,
    Open(Vec<u8>, String),
}

/// Lines of the manifest read ahead to find a file that is not the next one listed.
const LOOKAHEAD: usize = 64;

/// The manifest, read in step with the archive's files. A whole backup lists its files in the
/// order they were written, so each file is the next line and memory stays flat; a file listed
/// elsewhere (a manifest edited, or damaged) is looked for a few lines ahead, and what is
/// still unmatched is kept aside until the end: memory then grows with the damage only.
struct Matcher {
    lines: manifest::Reader,
    /// The manifest's path, read again to find duplicated lines when lines are left over.
    manifest: std::path::PathBuf,
    /// Lines read ahead, not matched yet: path, digest.
    ahead: HashMap<Vec<u8>, String>,
    /// Files of the archive not found in the manifest so far: path, digest.
    unlisted: HashMap<Vec<u8>, String>,
}

impl Matcher {
    fn new(manifest: &Path) -> Result<Matcher, ArchiveError> {
        Ok(Matcher {
            lines: manifest::Reader::open(manifest)?,
            manifest: manifest.to_owned(),
            ahead: HashMap::new(),
            unlisted: HashMap::new(),
        })
    }

    fn compare(path: &[u8], want: &str, got: &str, damage: &mut Vec<String>) {
        if want != got {
            damage.push(format!(
                "{}: content differs from the manifest",
                shown(path)
            ));
        }
    }

    /// Reads the next line; one that matches a file already set aside is settled at once.
    fn read_line(&mut self, damage: &mut Vec<String>) -> Result<Line, ArchiveError> {
        let Some(line) = self.lines.next() else {
            return Ok(Line::End);
        };
        let (want, path) = line?;
        if let Some(got) = self.unlisted.remove(&path) {
            Matcher::compare(&path, &want, &got, damage);
            return Ok(Line::Settled);
        }
        Ok(Line::Open(path, want))
    }

    /// One file of the archive, with the digest of its bytes.
    fn record(
        &mut self,
        path: Vec<u8>,
        digest: String,
        damage: &mut Vec<String>,
    ) -> Result<(), ArchiveError> {
        if let Some(want) = self.ahead.remove(&path) {
            Matcher::compare(&path, &want, &digest, damage);
            return Ok(());
        }
        for _ in 0..LOOKAHEAD {
            match self.read_line(damage)? {
                Line::End => break,
                Line::Settled => {}
                Line::Open(listed, want) if listed == path => {
                    Matcher::compare(&path, &want, &digest, damage);
                    return Ok(());
                }
                Line::Open(listed, want) => {
                    self.ahead.insert(listed, want);
                }
            }
        }
        self.unlisted.insert(path, digest);
        Ok(())
    }

    /// The rest of the manifest: what is left on either side is damage.
    fn finish(mut self, damage: &mut Vec<String>) -> Result<(), ArchiveError> {
        loop {
            match self.read_line(damage)? {
                Line::End => break,
                Line::Settled => {}
                Line::Open(path, want) => {
                    self.ahead.insert(path, want);
                }
            }
        }
        // A line listed twice matched its file once: its copy is named as such, with where both
        // are, not as a file missing from the archive. Only damage pays for the second reading.
        if !self.ahead.is_empty() {
            let (mut seen, mut duplicated) = (HashMap::new(), Vec::new());
            let mut lines = manifest::Reader::open(&self.manifest)?;
            while let Some(line) = lines.next() {
                let (_, path) = line?;
                if !self.ahead.contains_key(&path) {
                    continue;
                }
                let at = lines.line_number();
                if let Some(first) = seen.get(&path) {
                    damage.push(format!(
                        "{}, line {at}: a duplicated line (the same file as line {first}): {}",
                        self.manifest.display(),
                        shown(&path)
                    ));
                    duplicated.push(path);
                } else {
                    seen.insert(path, at);
                }
            }
            for path in duplicated {
                self.ahead.remove(&path);
            }
        }
        for (left, what) in [
            (self.unlisted, "in the archive but not in the manifest"),
            (self.ahead, "in the manifest but not in the archive"),
        ] {
            let mut paths: Vec<_> = left.into_keys().collect();
            paths.sort();
            let lines = paths.iter().map(|p| format!("{}: {what}", shown(p)));
            damage.extend(lines);
        }
        Ok(())
    }
}

/// Compares the manifest with the live install: files changed or missing since. The backup's
/// store is looked for where the install's store is (it may be outside the root).
pub fn verify_against_live(
    backup: &Backup,
    install: &crate::install::Install,
    progress: &dyn Progress,
) -> Result<VerifyReport, ArchiveError> {
    progress.start(
        "comparing with the live tree",
        Some(backup.meta.files),
        Unit::Items,
    );
    let compare = |(want, path): &(String, Vec<u8>)| -> (u64, Option<String>) {
        let logical = Path::new(OsStr::from_bytes(path));
        let live = match logical.strip_prefix(&backup.meta.store_prefix) {
            Ok(rest) => install.store.join(rest),
            Err(_) => install.root.join(logical),
        };
        let outcome = match super::sha256_file(&live) {
            Ok((bytes, digest)) if digest == *want => (bytes, None),
            Ok((bytes, _)) => (
                bytes,
                Some(format!("{}: changed since the backup", shown(path))),
            ),
            Err(_) => (
                0,
                Some(format!("{}: missing from the live tree", shown(path))),
            ),
        };
        progress.advance(1);
        outcome
    };
    // The manifest in batches, each hashed on all cores: memory does not grow with the files.
    let mut report = VerifyReport::default();
    let mut lines = manifest::Reader::open(&backup.manifest_path())?;
    loop {
        let batch = lines
            .by_ref()
            .take(LIVE_BATCH)
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            break;
        }
        let results: Vec<(u64, Option<String>)> = batch.par_iter().map(compare).collect();
        for (bytes, problem) in results {
            report.files += 1;
            report.bytes += bytes;
            report.damage.extend(problem);
        }
    }
    progress.finish();
    Ok(report)
}

/// Manifest lines compared with the live tree at a time.
const LIVE_BATCH: usize = 4096;

/// Whether a symlink at `path` pointing at `target` stays inside the tree it is restored into.
/// The target must be relative and normal: its `..` all come first, and stay below the tree. A
/// `..` after a name (`a/up/../..`) is refused, since `a/up` may itself be a link restored earlier
/// and the lexical reading would then not be where it leads; with that rule, a chain of such
/// links can only ever lead inside.
pub(crate) fn link_stays_inside(path: &[u8], target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = Path::new(OsStr::from_bytes(path)).components().count() as i64 - 1;
    let mut named = false;
    for c in target.components() {
        match c {
            Component::ParentDir if named => return false,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => {
                named = true;
                depth += 1;
            }
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// What no backup may delete or replace with a link: the config files, and the toolkit's own
/// journal, lock and backups (a differential's `deleted` list names paths to remove).
pub(crate) fn protected(path: &[u8]) -> bool {
    let first = path.split(|&b| b == b'/').next().unwrap_or_default();
    path.is_empty()
        || path == b"."
        || is_config_file(path)
        || [
            crate::install::JOURNAL_DIR.as_bytes(),
            crate::install::BACKUP_DIR.as_bytes(),
            crate::guard::LOCK_FILE.as_bytes(),
        ]
        .contains(&first)
}
