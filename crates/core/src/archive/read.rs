//! Reading backups: verify (every chunk decompressed and every file re-hashed, on all cores),
//! verify against the live tree, and restore (a chain of full + differential, selectively,
//! never writing outside the target).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::chunk::hex;
use super::{
    ArchiveError, Backup, ChunkMeta, Compression, Kind, Selection, decode_path, io_err, manifest,
};
use crate::config::schema::is_config_file;
use crate::progress::{Progress, Unit};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub files: u64,
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
        Ok(t) => Err(damaged(format!(
            "holds {} bytes of tar, the index says {}",
            t.len(),
            chunk.tar_length
        ))),
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
            checked.damage.push(format!(
                "{}: an unsafe path in the archive",
                String::from_utf8_lossy(&path)
            ));
        }
        let kind = entry.header().entry_type();
        checked.order.push((path.clone(), kind.is_symlink()));
        if kind.is_hard_link() {
            checked.damage.push(format!(
                "{}: a hard link (kc-backup never writes them)",
                String::from_utf8_lossy(&path)
            ));
        }
        if kind.is_symlink() && is_config_file(&path) {
            checked.damage.push(format!(
                "{}: a config file stored as a symbolic link (kc-backup stores their content)",
                String::from_utf8_lossy(&path)
            ));
        }
        if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            let target = target.as_deref().unwrap_or_default();
            if !link_stays_inside(&path, Path::new(OsStr::from_bytes(target))) {
                checked.links_out.push(format!(
                    "{}: a symbolic link that leads out of the install (-> {})",
                    String::from_utf8_lossy(&path),
                    String::from_utf8_lossy(target)
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
            checked
                .files
                .push((path, hex(&Sha256::digest(&tar[start..end])), size));
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
    let mut expected = Matcher::new(manifest::Reader::open(&backup.manifest_path())?);
    let mut report = VerifyReport::default();
    // The archive's symbolic links, to find entries (and deletions) below one: restoring them
    // would write through the link.
    let mut links: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let below_link = |links: &std::collections::HashSet<Vec<u8>>, path: &[u8]| {
        !links.is_empty()
            && path
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && links.contains(&path[..i]))
    };
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
                        String::from_utf8_lossy(&path)
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
                    ended = Some((path, hex(&hasher.finalize()), size));
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
        report.damage.push(format!(
            "{}: the archive ends inside it",
            String::from_utf8_lossy(&path)
        ));
    }
    for encoded in &backup.meta.deleted {
        let path = decode_path(encoded);
        if unsafe_path(&path) || below_link(&links, &path) || protected(&path) {
            report.damage.push(format!(
                "{}: a deletion outside the install, below a symbolic link, or of a config file or the toolkit's own files",
                String::from_utf8_lossy(&path)
            ));
        }
    }
    report.damage.extend(size_damage(backup));
    expected.finish(&mut report.damage)?;
    Ok(report)
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
    /// Lines read ahead, not matched yet: path, digest.
    ahead: HashMap<Vec<u8>, String>,
    /// Files of the archive not found in the manifest so far: path, digest.
    unlisted: HashMap<Vec<u8>, String>,
}

impl Matcher {
    fn new(lines: manifest::Reader) -> Matcher {
        Matcher {
            lines,
            ahead: HashMap::new(),
            unlisted: HashMap::new(),
        }
    }

    fn compare(path: &[u8], want: &str, got: &str, damage: &mut Vec<String>) {
        if want != got {
            damage.push(format!(
                "{}: content differs from the manifest",
                String::from_utf8_lossy(path)
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
        for (left, what) in [
            (self.unlisted, "in the archive but not in the manifest"),
            (self.ahead, "in the manifest but not in the archive"),
        ] {
            let mut paths: Vec<_> = left.into_keys().collect();
            paths.sort();
            let lines = paths
                .iter()
                .map(|p| format!("{}: {what}", String::from_utf8_lossy(p)));
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
                Some(format!(
                    "{}: changed since the backup",
                    String::from_utf8_lossy(path)
                )),
            ),
            Err(_) => (
                0,
                Some(format!(
                    "{}: missing from the live tree",
                    String::from_utf8_lossy(path)
                )),
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

/// Where and what to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The directory the archive's paths are restored under (the install root in place).
    pub to: PathBuf,
    pub selection: Selection,
    /// Where the store goes, when it is not `<to>/<store_prefix>` (a store outside the root).
    pub store: Option<PathBuf>,
    /// Give files back the owners the archive records (in place, as root); otherwise restored
    /// files belong to whoever restores them.
    pub preserve_owners: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    pub backups: Vec<String>,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub deleted: u64,
}

/// The backups to apply, in order: the full one, then the differential asked for.
pub fn chain(backup: &Backup, dir: &Path) -> Result<Vec<Backup>, ArchiveError> {
    match (backup.meta.kind, &backup.meta.base) {
        (Kind::Diff, Some(base)) => {
            let sibling = backup.archive.parent().unwrap_or(dir);
            let base = super::find(sibling, base).or_else(|_| super::find(dir, base))?;
            Ok(vec![base, backup.clone()])
        }
        _ => Ok(vec![backup.clone()]),
    }
}

fn open_stream(backup: &Backup) -> Result<Box<dyn Read>, ArchiveError> {
    let file = std::io::BufReader::with_capacity(
        1 << 20,
        fs_err::File::open(&backup.archive).map_err(io_err(&backup.archive))?,
    );
    Ok(match backup.meta.compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(file).map_err(io_err(&backup.archive))?,
        ),
    })
}

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

/// The first existing component of `rel` below `dest` (the last one too, when `last` is set)
/// that is a symbolic link: a write or a deletion must never go through one, wherever it leads.
fn link_on_the_way(dest: &Path, rel: &[u8], last: bool) -> Option<PathBuf> {
    let rel = Path::new(OsStr::from_bytes(rel));
    let count = rel.components().count();
    let mut at = dest.to_path_buf();
    for (i, c) in rel.components().enumerate() {
        at.push(c);
        if i + 1 == count && !last {
            break;
        }
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
            Err(_) => return None, // nothing further exists
        }
    }
    None
}

/// The paths a restore of `chain` with `selection` would write or delete (files and links; the
/// directories that hold them are made as needed), sorted: what an in-place restore touches.
pub fn entry_paths(chain: &[Backup], selection: &Selection) -> Result<Vec<Vec<u8>>, ArchiveError> {
    let (mut out, mut dirs) = (Vec::new(), Vec::new());
    for backup in chain {
        let mut archive = tar::Archive::new(open_stream(backup)?);
        for entry in archive.entries().map_err(io_err(&backup.archive))? {
            let entry = entry.map_err(io_err(&backup.archive))?;
            let path = entry.path_bytes().into_owned();
            let path = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
            if !selection.matches(&path) {
                continue;
            }
            if entry.header().entry_type().is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
        for encoded in &backup.meta.deleted {
            let path = decode_path(encoded);
            if selection.matches(&path) {
                out.push(path);
            }
        }
    }
    // A directory counts only when nothing below it does (an empty `#msgs`): naming a directory
    // takes in everything below it.
    out.sort();
    out.dedup();
    dirs.sort();
    dirs.dedup();
    let has_below = |all: &[Vec<u8>], dir: &[u8]| {
        let mut low = dir.to_vec();
        low.push(b'/');
        let at = all.partition_point(|p| p.as_slice() < low.as_slice());
        all.get(at).is_some_and(|p| p.starts_with(&low))
    };
    let empty: Vec<Vec<u8>> = dirs
        .iter()
        .filter(|d| !has_below(&out, d) && !has_below(&dirs, d))
        .cloned()
        .collect();
    out.extend(empty);
    out.sort();
    Ok(out)
}

/// Restores a backup (with its base, for a differential) under `options.to`.
pub fn restore(
    chain: &[Backup],
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, ArchiveError> {
    let mut report = RestoreReport::default();
    fs_err::create_dir_all(&options.to).map_err(io_err(&options.to))?;
    // Each destination with its resolved path, which every write is checked against.
    let resolved = |dir: &PathBuf| -> Result<(PathBuf, PathBuf), ArchiveError> {
        Ok((dir.clone(), fs_err::canonicalize(dir).map_err(io_err(dir))?))
    };
    let to = resolved(&options.to)?;
    let store = options.store.as_ref().map(resolved).transpose()?;
    for backup in chain {
        report.backups.push(backup.meta.id.clone());
        progress.start(
            &format!("restoring {}", backup.meta.id),
            Some(backup.meta.bytes),
            Unit::Bytes,
        );
        let store_prefix = backup.meta.store_prefix.as_bytes().to_vec();
        let target_of = |path: &[u8]| -> (&PathBuf, &PathBuf, Vec<u8>) {
            match &store {
                Some((store, real))
                    if path.starts_with(&store_prefix)
                        && path.get(store_prefix.len()).is_none_or(|&b| b == b'/') =>
                {
                    let rest = path[store_prefix.len()..]
                        .strip_prefix(b"/")
                        .unwrap_or_default();
                    (store, real, rest.to_vec())
                }
                _ => (&to.0, &to.1, path.to_vec()),
            }
        };
        let mut archive = tar::Archive::new(open_stream(backup)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive.set_preserve_ownerships(options.preserve_owners);
        for entry in archive.entries().map_err(io_err(&backup.archive))? {
            let mut entry = entry.map_err(io_err(&backup.archive))?;
            let path = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&path).into_owned();
            if unsafe_path(&path) {
                return Err(ArchiveError::Escapes {
                    path: options.to.clone(),
                    entry: shown,
                });
            }
            if !options.selection.matches(&path) {
                continue;
            }
            let kind = entry.header().entry_type();
            if kind.is_hard_link() {
                // A hard link's target resolves against the working directory, not the target;
                // kc-backup never writes them.
                return Err(ArchiveError::Escapes {
                    path: options.to.clone(),
                    entry: format!("{shown} (a hard link)"),
                });
            }
            // A link is restored as a link, whatever it points at: nothing below is ever
            // written through one (`link_on_the_way`).
            if kind.is_symlink() && is_config_file(&path) {
                return Err(ArchiveError::Escapes {
                    path: options.to.join(OsStr::from_bytes(&path)),
                    entry: format!("{shown}: a config file stored as a symbolic link"),
                });
            }
            let (dest, real_dest, rel) = target_of(&path);
            if rel.is_empty() {
                fs_err::create_dir_all(dest).map_err(io_err(dest))?;
                continue;
            }
            let size = entry.size();
            let full = dest.join(OsStr::from_bytes(&rel));
            // A directory entry over a link would chmod (or fill) wherever the link leads; a file
            // or link entry replaces the link itself, so only the components before it count.
            if let Some(link) = link_on_the_way(dest, &rel, kind.is_dir()) {
                return Err(ArchiveError::Escapes {
                    path: link,
                    entry: format!("{shown}: a symbolic link is on its way"),
                });
            }
            let is_link = full
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink());
            // The admin's symlinked users.cfg or mailserver.cfg (a Docker volume): written in
            // the link's target, the link kept.
            let config_target = (is_link && kind.is_file() && is_config_file(&rel))
                .then(|| full.canonicalize().ok())
                .flatten()
                .filter(|t| t.is_file());
            if let Some(target) = config_target {
                entry.unpack(&target).map_err(io_err(&target))?;
                report.files += 1;
                report.bytes += size;
                progress.advance(size);
                continue;
            }
            if !kind.is_dir() && is_link {
                fs_err::remove_file(&full).map_err(io_err(&full))?;
            }
            if let Some(parent) = full.parent() {
                // Resolved, the parent must be inside: a chain of symlinks restored earlier could
                // otherwise lead a write (or the creation of a directory) outside.
                let mut existing = parent;
                while !existing.exists() {
                    existing = existing.parent().unwrap_or(dest);
                }
                let real = fs_err::canonicalize(existing).map_err(io_err(existing))?;
                if !real.starts_with(real_dest) {
                    return Err(ArchiveError::Escapes {
                        path: real,
                        entry: shown,
                    });
                }
                fs_err::create_dir_all(parent).map_err(io_err(parent))?;
            }
            if kind.is_dir() && full.is_dir() {
                // Keep an existing directory; only its mode and time come from the archive.
                let _ = entry.unpack(&full);
            } else {
                entry.unpack(&full).map_err(io_err(&full))?;
            }
            if kind.is_dir() {
                report.dirs += 1;
            } else {
                report.files += 1;
                report.bytes += size;
                progress.advance(size);
            }
        }
        for encoded in &backup.meta.deleted {
            let path = decode_path(encoded);
            if unsafe_path(&path) || !options.selection.matches(&path) {
                continue;
            }
            let (dest, _, rel) = target_of(&path);
            let full = dest.join(OsStr::from_bytes(&rel));
            if let Some(link) = link_on_the_way(dest, &rel, false) {
                return Err(ArchiveError::Escapes {
                    path: link,
                    entry: format!(
                        "{} (deleted): a symbolic link is on its way",
                        String::from_utf8_lossy(&path)
                    ),
                });
            }
            if protected(&path) {
                return Err(ArchiveError::Escapes {
                    path: full.clone(),
                    entry: format!(
                        "{} (deleted): a config file or the toolkit's own files are never deleted by a restore",
                        String::from_utf8_lossy(&path)
                    ),
                });
            }
            match std::fs::remove_file(&full) {
                Ok(()) => report.deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&full)(e)),
            }
        }
        progress.finish();
    }
    Ok(report)
}
