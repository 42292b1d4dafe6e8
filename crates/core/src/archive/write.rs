//! Writing a backup: scan, cut the tar stream into chunks, build the chunks on all cores, append
//! them in order, then write the sidecars, verify, fsync and rename.
//!
//! Each chunk is a few MiB of tar (whole entries, except that a file larger than a chunk is split
//! across several), read, hashed, tar-encoded and compressed by a rayon task into an independent
//! gzip member or zstd frame. One writer thread appends them in order. At most a fixed number of
//! chunks are in flight (a ticket channel), so memory does not grow with the store.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use sha2::{Digest, Sha256};

use super::chunk::{Built, Piece, Planner, build_chunk, end_of_archive};
use super::partial::Partial;
use super::scan::{self, Entry, EntryKind, Unit};
use super::sorted::{Sorted, Sorter, WalkOrder, budget};
use super::{
    ArchiveError, Backup, ChunkMeta, Compression, FORMAT, Kind, Mask, Meta, Selection, Skipped,
    encode_path, io_err, manifest, pipeline, sidecar, stamp,
};
use crate::install::Install;
use crate::progress::{Progress, Unit as ProgressUnit};

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Full, differential or pre-change.
    pub kind: Kind,
    /// The full backup a differential is based on.
    pub base: Option<Backup>,
    /// gzip or zstd.
    pub compression: Compression,
    /// Compression level; the format's default when `None`.
    pub level: Option<i32>,
    /// What to back up (`kmsrecover`'s masks).
    pub masks: Vec<Mask>,
    /// Record unreadable files in the `.json` and go on, instead of failing.
    pub skip_unreadable: bool,
    /// Tar bytes per chunk.
    pub chunk_size: usize,
    /// Back up exactly these archive paths (a pre-change backup) instead of the masks; those
    /// that do not exist are recorded as absent.
    pub paths: Option<Vec<Vec<u8>>>,
}

impl Default for CreateOptions {
    fn default() -> CreateOptions {
        CreateOptions {
            kind: Kind::Full,
            base: None,
            compression: Compression::Gzip,
            level: None,
            masks: vec![Mask::All],
            skip_unreadable: false,
            chunk_size: 4 << 20,
            paths: None,
        }
    }
}

/// A name not yet taken in `dir`: `<K><UTC>`, one second later per clash.
fn fresh_id(dir: &Path, kind: Kind) -> String {
    let mut t = jiff::Timestamp::now();
    loop {
        let id = format!("{}{}", kind.letter(), stamp(t));
        let taken = [Compression::Gzip, Compression::Zstd].iter().any(|c| {
            let archive = dir.join(format!("{id}.{}", c.extension()));
            archive.exists() || sidecar(&archive, "partial").exists()
        });
        if !taken {
            return id;
        }
        t = t
            .checked_add(jiff::SignedDuration::from_secs(1))
            .expect("time in range");
    }
}

/// The bytes the newest earlier backup of `kind` in `backup_dir` held (none for a pre-change
/// backup, whose size has nothing to do with the last one's).
fn estimate(backup_dir: &Path, kind: Kind) -> Option<u64> {
    if kind == Kind::PreChange {
        return None;
    }
    super::list(backup_dir)
        .ok()?
        .into_iter()
        .filter(|b| b.meta.kind == kind)
        .max_by(|a, b| a.meta.id.cmp(&b.meta.id))
        .map(|b| b.meta.bytes)
}

/// Takes a backup of `install` into `backup_dir`: scan, write the chunks (the walk and the
/// building in parallel, appended in order), then the sidecars, checked before they are named.
pub fn create(
    install: &Install,
    backup_dir: &Path,
    options: &CreateOptions,
    progress: &dyn Progress,
) -> Result<Backup, ArchiveError> {
    let started = jiff::Timestamp::now();
    let (walker, units) = scan_units(install, backup_dir, options)?;
    let store_prefix = walker.store_prefix.clone();
    // Private: users.cfg's passwords can be decrypted by anyone who reads it (KERIO-FORMAT.md §2).
    crate::change::private_dir(backup_dir).map_err(io_err(backup_dir))?;
    let order = WalkOrder {
        store_last: walker.store_outside,
    };
    let diff = match options.kind {
        Kind::Diff => Some(DiffBase::load(
            options.base.as_ref().ok_or_else(|| ArchiveError::Invalid {
                path: backup_dir.to_owned(),
                message: "a differential needs a full backup to be based on".into(),
            })?,
            order,
            backup_dir,
        )?),
        _ => None,
    };
    let id = fresh_id(backup_dir, options.kind);
    let archive = backup_dir.join(format!("{id}.{}", options.compression.extension()));
    let partial = sidecar(&archive, "partial");
    let level = options.level.unwrap_or(options.compression.default_level());
    // The total is known once the walk is over; the bar gets it then. Until then, the previous
    // backup of this kind gives an estimate, so the bar has a percentage and an ETA at once.
    progress.start(
        "backing up",
        estimate(backup_dir, options.kind),
        ProgressUnit::Bytes,
    );
    let out = private_file(&partial)?;
    // From here on, an error, a signal or the next run removes what was written.
    let unfinished = Partial::new(&partial)?;
    // The manifest goes to an unnamed file as the chunks are appended, never whole in memory;
    // it is copied to its name with the other sidecars. Unnamed, it is gone with the process
    // however that ends: a stopped run leaves only the archive's `.partial`, as before.
    let lines = tempfile::tempfile_in(backup_dir).map_err(io_err(backup_dir))?;
    let mut writer = ChunkWriter::new(out, fs_err::File::from_parts(lines, backup_dir));
    let build = Build {
        compression: options.compression,
        level,
        skip: options.skip_unreadable,
        chunk_size: options.chunk_size as u64,
    };
    let planned = write_chunks(walker, units, diff, &mut writer, build, progress)?;
    writer.append(end_of_archive(options.compression, level)?)?;
    progress.finish();
    progress.start("syncing", None, ProgressUnit::Items);
    let (chunks, lines, skipped_in_build, archive_bytes, file_bytes, counts) = writer.finish()?;
    progress.finish();
    let mut skipped = planned.skipped;
    skipped.extend(skipped_in_build);
    let meta = Meta {
        format: FORMAT,
        id: id.clone(),
        kind: options.kind,
        base: options.base.as_ref().map(|b| b.meta.id.clone()),
        created: jiff::Timestamp::now(),
        scan_started: started.as_second(),
        tool: format!("kc-backup {}", env!("CARGO_PKG_VERSION")),
        compression: options.compression,
        level,
        mask: options.masks.clone(),
        store_prefix,
        files: counts[EntryKind::File as usize],
        dirs: counts[EntryKind::Dir as usize],
        symlinks: counts[EntryKind::Symlink as usize],
        bytes: file_bytes,
        archive_bytes,
        chunks,
        deleted: planned.deleted.unwrap_or_default(),
        absent: absent(install, options),
        skipped,
    };
    seal(backup_dir, &archive, unfinished, lines, meta, progress)
}

/// The scan's units for the options: the masks, or (a pre-change backup) exactly the paths.
fn scan_units(
    install: &Install,
    backup_dir: &Path,
    options: &CreateOptions,
) -> Result<(scan::Walker, Vec<Unit>), ArchiveError> {
    let selection = match &options.paths {
        Some(paths) => Selection::paths(paths),
        None => Selection::new(&options.masks, "store", None, None, None),
    };
    let (walker, units) = scan::units(install, &selection, backup_dir, options.skip_unreadable)?;
    if walker.store_prefix != "store" && options.paths.is_none() {
        // The masks name the store by where it really is in this install.
        let selection = Selection::new(&options.masks, &walker.store_prefix, None, None, None);
        return scan::units(install, &selection, backup_dir, options.skip_unreadable);
    }
    Ok((walker, units))
}

/// How chunks are built.
#[derive(Debug, Clone, Copy)]
struct Build {
    compression: Compression,
    level: i32,
    /// Record unreadable files and go on.
    skip: bool,
    /// Tar bytes per chunk.
    chunk_size: u64,
}

/// The two pipelines: mailboxes are walked in parallel and their entries cut into chunks (the
/// planner thread), while chunks are built in parallel and appended in order (here).
fn write_chunks(
    walker: scan::Walker,
    units: Vec<Unit>,
    diff: Option<DiffBase>,
    writer: &mut ChunkWriter,
    build: Build,
    progress: &dyn Progress,
) -> Result<Planned, ArchiveError> {
    let in_flight = pipeline::default_in_flight();
    let walker = Arc::new(walker);
    std::thread::scope(|s| {
        let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Vec<Piece>>(in_flight);
        let planner = s.spawn(move || plan_chunks(walker, units, diff, build, &chunk_tx, progress));
        let jobs = chunk_rx
            .into_iter()
            .map(|pieces| move || build_chunk(&pieces, build.compression, build.level, build.skip));
        let written = pipeline::in_order(jobs, in_flight, |built| {
            let built = built?;
            progress.advance(built.file_bytes);
            writer.append(built)
        });
        let planned = planner.join().expect("the planner thread does not panic");
        // The writer's error explains a planner that was stopped, so it comes first.
        written.and(planned)
    })
}

/// The planner thread: walks the units in parallel (in order), keeps what a differential takes,
/// and sends the entries cut into chunks.
fn plan_chunks(
    walker: Arc<scan::Walker>,
    units: Vec<Unit>,
    mut diff: Option<DiffBase>,
    build: Build,
    chunk_tx: &mpsc::SyncSender<Vec<Piece>>,
    progress: &dyn Progress,
) -> Result<Planned, ArchiveError> {
    let in_flight = pipeline::default_in_flight();
    let mut planner = Planner::new(build.chunk_size);
    let mut planned = Planned::default();
    let mut ready = Vec::new();
    let jobs = units.into_iter().map(|unit| {
        let walker = Arc::clone(&walker);
        move || match unit {
            Unit::Found(entries, skipped) => Ok((entries, skipped)),
            Unit::Subtree { abs, path } => walker.subtree(&abs, &path),
        }
    });
    let stopped = || ArchiveError::Invalid {
        path: PathBuf::from("<writer>"),
        message: "stopped".into(),
    };
    pipeline::in_order(
        jobs,
        in_flight,
        |found: Result<scan::Found, ArchiveError>| {
            let (entries, skipped) = found?;
            planned.skipped.extend(skipped);
            for e in entries {
                if let Some(d) = diff.as_mut()
                    && !d.takes(&e)?
                {
                    continue;
                }
                if e.kind == EntryKind::File {
                    planned.total += e.size;
                }
                planner.push(e, &mut ready);
                for chunk in ready.drain(..) {
                    chunk_tx.send(chunk).map_err(|_| stopped())?;
                }
            }
            Ok(())
        },
    )?;
    planner.finish(&mut ready);
    for chunk in ready.drain(..) {
        chunk_tx.send(chunk).map_err(|_| stopped())?;
    }
    progress.set_total(planned.total);
    planned.deleted = diff.map(DiffBase::deleted).transpose()?;
    Ok(planned)
}

/// The paths a pre-change backup was asked for that do not exist (undo removes them), encoded.
fn absent(install: &Install, options: &CreateOptions) -> Vec<String> {
    options
        .paths
        .iter()
        .flatten()
        // Not followed: a dangling link exists, and undo must bring it back.
        .filter(|p| {
            // Logical: a store outside the root is `store/…`, never `<root>/store`.
            install
                .resolve(Path::new(std::ffi::OsStr::from_bytes(p)))
                .symlink_metadata()
                .is_err()
        })
        .map(|p| encode_path(p))
        .collect()
}

/// Writes the sidecars, checks what was written, then names it: the sidecars first, the
/// archive last (`list` only sees a backup whose archive exists).
fn seal(
    backup_dir: &Path,
    archive: &Path,
    mut unfinished: Partial,
    lines: std::fs::File,
    meta: Meta,
    progress: &dyn Progress,
) -> Result<Backup, ArchiveError> {
    let partial = sidecar(archive, "partial");
    let manifest_path = sidecar(archive, "sha256");
    let meta_path = sidecar(archive, "json");
    let manifest_partial = sidecar(&manifest_path, "partial");
    let meta_partial = sidecar(&meta_path, "partial");
    unfinished.add(&manifest_partial);
    unfinished.add(&meta_partial);
    copy_synced(lines, &manifest_partial)?;
    let json = serde_json::to_vec_pretty(&meta).expect("Meta serialises");
    write_synced(&meta_partial, &json)?;
    let candidate = Backup {
        archive: partial.clone(),
        meta: meta.clone(),
    };
    if let Some(problem) = super::read::check_chunks(&candidate, progress)?.first() {
        return Err(ArchiveError::Invalid {
            path: partial,
            message: format!("failed its check right after writing: {problem}"),
        });
    }
    unfinished.finish(|| {
        rename(&manifest_partial, &manifest_path)?;
        rename(&meta_partial, &meta_path)?;
        rename(&partial, archive)
    })?;
    sync_dir(backup_dir)?;
    Ok(Backup {
        archive: archive.to_owned(),
        meta,
    })
}

/// What the writer hands back: chunk index, the manifest's unnamed file, skipped files, archive
/// bytes, file bytes, entry counts by kind.
type Written = (
    Vec<ChunkMeta>,
    std::fs::File,
    Vec<Skipped>,
    u64,
    u64,
    [u64; 3],
);

/// What the planner learnt from the walk.
#[derive(Debug, Default)]
struct Planned {
    total: u64,
    skipped: Vec<Skipped>,
    /// A differential's deletions: the base's files the walk did not find, encoded, sorted.
    deleted: Option<Vec<String>>,
}

/// What a differential compares with: the base's files, sorted in walk order (on disk when they
/// do not fit the budget), read in step with the walk; and when the base's scan began.
struct DiffBase {
    base: std::iter::Peekable<Sorted>,
    order: WalkOrder,
    since: i64,
    /// The last file the walk gave, as a key: the merge is only right if the walk is in order.
    last: Option<Vec<u8>>,
    /// The base's files the walk went past without finding: deleted since.
    gone: Vec<Vec<u8>>,
}

impl DiffBase {
    fn load(base: &Backup, order: WalkOrder, temp_dir: &Path) -> Result<DiffBase, ArchiveError> {
        let mut sorter = Sorter::new(temp_dir, budget());
        for line in manifest::Reader::open(&base.manifest_path())? {
            sorter.push(order.key(&line?.1))?;
        }
        Ok(DiffBase {
            base: sorter.finish()?.peekable(),
            order,
            // Anything whose mtime or ctime is not clearly before the base's scan began. The
            // margin covers the kernel's coarse file clock; taking a file too many costs
            // little, one too few loses it.
            since: base.meta.scan_started - 1,
            last: None,
            gone: Vec::new(),
        })
    }

    /// Takes the base's files that come before `key` in walk order (deleted, unless `key`
    /// is one of them); whether the base holds `key`.
    fn advance_to(&mut self, key: Option<&[u8]>) -> Result<bool, ArchiveError> {
        let mut found = false;
        while let Some(next) = self.base.peek() {
            let next = match next {
                Ok(n) => n,
                Err(_) => {
                    return Err(self
                        .base
                        .next()
                        .and_then(Result::err)
                        .expect("peeked an error"));
                }
            };
            match key.map(|k| next.as_slice().cmp(k)) {
                Some(std::cmp::Ordering::Greater) => break,
                Some(std::cmp::Ordering::Equal) => found = true,
                _ => self.gone.push(WalkOrder::path(next)),
            }
            self.base.next();
        }
        Ok(found)
    }

    /// Whether the differential takes this entry (directories and links always).
    fn takes(&mut self, e: &Entry) -> Result<bool, ArchiveError> {
        if e.kind != EntryKind::File {
            return Ok(true);
        }
        let key = self.order.key(&e.path);
        if self.last.as_ref().is_some_and(|last| *last >= key) {
            // A deletion must never be recorded for a file that is there: refuse rather.
            return Err(ArchiveError::Invalid {
                path: e.abs.clone(),
                message: "the walk went out of order; no differential was written".into(),
            });
        }
        let in_base = self.advance_to(Some(&key))?;
        self.last = Some(key);
        Ok(!in_base || e.changed >= self.since)
    }

    /// The base's files that are gone, encoded, sorted bytewise.
    fn deleted(mut self) -> Result<Vec<String>, ArchiveError> {
        self.advance_to(None)?;
        let mut gone = std::mem::take(&mut self.gone);
        gone.sort();
        Ok(gone.into_iter().map(|p| encode_path(&p)).collect())
    }
}

/// Appends built chunks in order, records where each lies, and writes the manifest (hashing
/// split files, whose pieces come from several chunks).
struct ChunkWriter {
    path: PathBuf,
    out: std::io::BufWriter<fs_err::File>,
    metas: Vec<ChunkMeta>,
    manifest: std::io::BufWriter<fs_err::File>,
    skipped: Vec<Skipped>,
    offset: u64,
    tar_offset: u64,
    file_bytes: u64,
    counts: [u64; 3],
    /// The split file being hashed: path, hasher, bytes so far.
    split: Option<(Vec<u8>, Sha256, u64)>,
}

impl ChunkWriter {
    fn new(out: fs_err::File, manifest: fs_err::File) -> ChunkWriter {
        ChunkWriter {
            path: out.path().to_owned(),
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            metas: Vec::new(),
            manifest: std::io::BufWriter::with_capacity(1 << 16, manifest),
            skipped: Vec::new(),
            offset: 0,
            tar_offset: 0,
            file_bytes: 0,
            counts: [0; 3],
            split: None,
        }
    }

    fn append(&mut self, built: Built) -> Result<(), ArchiveError> {
        self.out
            .write_all(&built.compressed)
            .map_err(io_err(&self.path))?;
        self.metas.push(ChunkMeta {
            offset: self.offset,
            length: built.compressed.len() as u64,
            tar_offset: self.tar_offset,
            tar_length: built.tar_len,
            lead: built.lead,
        });
        self.offset += built.compressed.len() as u64;
        self.tar_offset += built.tar_len;
        self.file_bytes += built.file_bytes;
        for (c, n) in self.counts.iter_mut().zip(built.counts) {
            *c += n;
        }
        for (path, hexed) in &built.digests {
            self.manifest
                .write_all(&manifest::line(hexed, path))
                .map_err(io_err(self.manifest.get_ref().path()))?;
        }
        for (path, size, data) in built.split {
            if self.split.as_ref().map(|(p, _, _)| p) != Some(&path) {
                self.split = Some((path, Sha256::new(), 0));
            }
            let (_, hasher, hashed) = self.split.as_mut().expect("set just above");
            hasher.update(&data);
            *hashed += data.len() as u64;
            if *hashed == size {
                let (path, hasher, _) = self.split.take().expect("set just above");
                self.manifest
                    .write_all(&manifest::line(&format!("{:x}", hasher.finalize()), &path))
                    .map_err(io_err(self.manifest.get_ref().path()))?;
            }
        }
        self.skipped.extend(built.skipped);
        Ok(())
    }

    fn finish(self) -> Result<Written, ArchiveError> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&path))?;
        let manifest = self
            .manifest
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        Ok((
            self.metas,
            manifest.into_parts().0,
            self.skipped,
            self.offset,
            self.file_bytes,
            self.counts,
        ))
    }
}

/// Creates (or truncates) a file only its owner may read, whatever the umask.
fn private_file(path: &Path) -> Result<fs_err::File, ArchiveError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(path))?;
    Ok(fs_err::File::from_parts(file, path))
}

/// Copies the manifest's unnamed file, from its start, to `path`, synced.
fn copy_synced(mut from: std::fs::File, path: &Path) -> Result<(), ArchiveError> {
    use std::io::Seek;
    from.rewind().map_err(io_err(path))?;
    let mut f = private_file(path)?;
    std::io::copy(&mut from, f.file_mut()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let mut f = private_file(path)?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn rename(from: &Path, to: &Path) -> Result<(), ArchiveError> {
    fs_err::rename(from, to).map_err(io_err(from))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
