//! Writing a backup: scan, cut the tar stream into chunks, build the chunks on all cores, append
//! them in order, then write the sidecars, verify, fsync and rename.
//!
//! Each chunk is a few MiB of tar (whole entries, except that a file larger than a chunk is split
//! across several), read, hashed, tar-encoded and compressed by a rayon task into an independent
//! gzip member or zstd frame. One writer thread appends them in order. At most a fixed number of
//! chunks are in flight (a ticket channel), so memory does not grow with the store.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::scan::{Entry, EntryKind, scan};
use super::{
    ArchiveError, Backup, ChunkMeta, Compression, FORMAT, Kind, Mask, Meta, Selection, Skipped,
    encode_path, io_err, manifest, sidecar, stamp,
};
use crate::install::Install;
use crate::progress::{Progress, Unit};

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub kind: Kind,
    /// The full backup a differential is based on.
    pub base: Option<Backup>,
    pub compression: Compression,
    /// Compression level; the format's default when `None`.
    pub level: Option<i32>,
    pub masks: Vec<Mask>,
    /// Record unreadable files in the `.json` and go on, instead of failing.
    pub skip_unreadable: bool,
    /// Tar bytes per chunk.
    pub chunk_size: usize,
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
        }
    }
}

/// A piece of an entry that goes into one chunk.
#[derive(Debug, Clone)]
struct Piece {
    entry: usize,
    /// For a file: which bytes of it.
    offset: u64,
    len: u64,
}

/// What a chunk task hands the writer.
struct Built {
    compressed: Vec<u8>,
    tar_len: u64,
    lead: u64,
    file_bytes: u64,
    /// Digests of files wholly inside this chunk.
    digests: Vec<(usize, String)>,
    /// Pieces of split files, in order, for the writer to hash.
    split: Vec<(usize, Vec<u8>)>,
    skipped: Vec<Skipped>,
}

fn tar_header_blocks(path: &[u8]) -> u64 {
    // A header, plus a GNU long-name entry for paths over 100 bytes.
    if path.len() > 100 {
        2 + (path.len() as u64 + 1).div_ceil(512)
    } else {
        1
    }
}

/// Cuts the entries into chunks of about `size` tar bytes.
fn plan_chunks(entries: &[Entry], size: u64) -> Vec<Vec<Piece>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut used = 0u64;
    let mut close = |current: &mut Vec<Piece>, used: &mut u64| {
        if !current.is_empty() {
            chunks.push(std::mem::take(current));
        }
        *used = 0;
    };
    for (i, e) in entries.iter().enumerate() {
        let header = tar_header_blocks(&e.path) * 512;
        let data = if e.kind == EntryKind::File {
            e.size.div_ceil(512) * 512
        } else {
            0
        };
        if used + header + data <= size || (current.is_empty() && data <= size) {
            current.push(Piece {
                entry: i,
                offset: 0,
                len: e.size.min(data),
            });
            used += header + data;
            continue;
        }
        if data <= size {
            close(&mut current, &mut used);
            current.push(Piece {
                entry: i,
                offset: 0,
                len: e.size,
            });
            used = header + data;
            continue;
        }
        // Larger than a chunk: split. The first piece fills this chunk if a useful part is left.
        if size.saturating_sub(used) < header + (64 << 10) {
            close(&mut current, &mut used);
        }
        let mut offset = 0;
        let mut room = size.saturating_sub(used + header);
        while offset < e.size {
            let len = room.min(e.size - offset).max(1);
            current.push(Piece {
                entry: i,
                offset,
                len,
            });
            offset += len;
            if offset < e.size {
                close(&mut current, &mut used);
                room = size;
            } else {
                used = len.div_ceil(512) * 512;
            }
        }
    }
    close(&mut current, &mut used);
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    chunks
}

fn changed(path: &Path, what: impl Into<String>) -> ArchiveError {
    ArchiveError::Changed {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// Builds one chunk: tar bytes, then compressed.
fn build_chunk(
    entries: &[Entry],
    pieces: &[Piece],
    last: bool,
    compression: Compression,
    level: i32,
    skip_unreadable: bool,
) -> Result<Built, ArchiveError> {
    let mut tar = tar::Builder::new(Vec::with_capacity(
        pieces.iter().map(|p| p.len as usize + 1024).sum(),
    ));
    tar.mode(tar::HeaderMode::Complete);
    let mut built = Built {
        compressed: Vec::new(),
        tar_len: 0,
        lead: 0,
        file_bytes: 0,
        digests: Vec::new(),
        split: Vec::new(),
        skipped: Vec::new(),
    };
    let mut seen_header = false;
    for piece in pieces {
        let e = &entries[piece.entry];
        let path = Path::new(OsStr::from_bytes(&e.path));
        let tar_err = |err: std::io::Error| ArchiveError::Io {
            path: e.abs.clone(),
            source: err,
        };
        if piece.offset > 0 {
            // The rest of a split file: raw data, then padding after its last piece.
            let mut data = vec![0u8; piece.len as usize];
            let file = fs_err::File::open(&e.abs).map_err(io_err(&e.abs))?;
            file.file()
                .read_exact_at(&mut data, piece.offset)
                .map_err(|_| changed(&e.abs, "it shrank"))?;
            let end = piece.offset + piece.len;
            if end == e.size {
                check_no_more(file.file(), end, &e.abs)?;
            }
            let out = tar.get_mut();
            out.extend_from_slice(&data);
            if end == e.size {
                let pad = (512 - e.size % 512) % 512;
                out.resize(out.len() + pad as usize, 0);
            }
            if !seen_header {
                built.lead = out.len() as u64;
            }
            built.file_bytes += piece.len;
            built.split.push((piece.entry, data));
            continue;
        }
        seen_header = true;
        match e.kind {
            EntryKind::Dir | EntryKind::Symlink => {
                let meta = fs_err::symlink_metadata(&e.abs).map_err(io_err(&e.abs))?;
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                if e.kind == EntryKind::Dir {
                    tar.append_data(&mut header, path, std::io::empty())
                        .map_err(tar_err)?;
                } else {
                    let target = fs_err::read_link(&e.abs).map_err(io_err(&e.abs))?;
                    tar.append_link(&mut header, path, &target)
                        .map_err(tar_err)?;
                }
            }
            EntryKind::File => {
                let file = match fs_err::File::open(&e.abs) {
                    Ok(f) => f,
                    Err(err) if skip_unreadable && piece.len == e.size => {
                        built.skipped.push(Skipped {
                            path: encode_path(&e.path),
                            error: err.to_string(),
                        });
                        continue;
                    }
                    Err(err) => return Err(io_err(&e.abs)(err)),
                };
                let meta = file.metadata().map_err(io_err(&e.abs))?;
                if meta.len() != e.size {
                    return Err(changed(
                        &e.abs,
                        format!("{} bytes when scanned, {} now", e.size, meta.len()),
                    ));
                }
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                let mut data = vec![0u8; piece.len as usize];
                file.file()
                    .read_exact_at(&mut data, 0)
                    .map_err(|_| changed(&e.abs, "it shrank"))?;
                if piece.len == e.size {
                    check_no_more(file.file(), e.size, &e.abs)?;
                    built
                        .digests
                        .push((piece.entry, hex(&Sha256::digest(&data))));
                    tar.append_data(&mut header, path, data.as_slice())
                        .map_err(tar_err)?;
                } else {
                    // The first piece of a split file: the header says the whole size.
                    tar.append_data(&mut header, path, std::io::empty())
                        .map_err(tar_err)?;
                    tar.get_mut().extend_from_slice(&data);
                    built.split.push((piece.entry, data));
                }
                built.file_bytes += piece.len;
            }
        }
    }
    if !seen_header {
        built.lead = tar.get_ref().len() as u64;
    }
    let mut bytes = tar.into_inner().map_err(|e| ArchiveError::Io {
        path: PathBuf::from("<tar>"),
        source: e,
    })?;
    if !last {
        // `into_inner` ends the stream with two zero blocks; only the last chunk keeps them.
        bytes.truncate(bytes.len() - 1024);
    }
    built.tar_len = bytes.len() as u64;
    built.compressed = compress(&bytes, compression, level)?;
    Ok(built)
}

fn check_no_more(file: &std::fs::File, size: u64, path: &Path) -> Result<(), ArchiveError> {
    let mut probe = [0u8; 1];
    match file.read_at(&mut probe, size) {
        Ok(0) => Ok(()),
        Ok(_) => Err(changed(path, "it grew")),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn compress(tar: &[u8], compression: Compression, level: i32) -> Result<Vec<u8>, ArchiveError> {
    let err = |e: std::io::Error| ArchiveError::Io {
        path: PathBuf::from("<compressor>"),
        source: e,
    };
    match compression {
        Compression::Gzip => {
            let level = flate2::Compression::new(level.clamp(0, 9) as u32);
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(tar.len() / 2), level);
            enc.write_all(tar).map_err(err)?;
            enc.finish().map_err(err)
        }
        Compression::Zstd => {
            let mut c = zstd::bulk::Compressor::new(level).map_err(err)?;
            // The frame checksum lets the check after writing prove each chunk's bytes.
            c.include_checksum(true).map_err(err)?;
            c.compress(tar).map_err(err)
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
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

/// Removes the partial files of a failed backup.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Takes a backup of `install` into `backup_dir`.
pub fn create(
    install: &Install,
    backup_dir: &Path,
    options: &CreateOptions,
    progress: &dyn Progress,
) -> Result<Backup, ArchiveError> {
    let started = jiff::Timestamp::now();
    progress.start("scanning", None, Unit::Items);
    let selection = Selection::new(&options.masks, "store", None, None, None);
    let mut scanned = scan(install, &selection, backup_dir, options.skip_unreadable)?;
    if scanned.store_prefix != "store" {
        // The masks name the store by where it really is in this install.
        let selection = Selection::new(&options.masks, &scanned.store_prefix, None, None, None);
        scanned = scan(install, &selection, backup_dir, options.skip_unreadable)?;
    }
    progress.finish();
    let mut deleted = Vec::new();
    if options.kind == Kind::Diff {
        let base = options.base.as_ref().ok_or_else(|| ArchiveError::Invalid {
            path: backup_dir.to_owned(),
            message: "a differential needs a full backup to be based on".into(),
        })?;
        let manifest_path = base.manifest_path();
        let listed = manifest::parse(
            &manifest_path,
            &fs_err::read(&manifest_path).map_err(io_err(&manifest_path))?,
        )?;
        let in_base: HashSet<Vec<u8>> = listed.into_iter().map(|(_, p)| p).collect();
        // Anything whose mtime or ctime is not clearly before the base's scan began. The margin
        // covers the kernel's coarse file clock; taking a file too many costs little, one too
        // few loses it.
        let since = base.meta.scan_started - 1;
        let present: HashSet<&[u8]> = scanned.entries.iter().map(|e| e.path.as_slice()).collect();
        let mut gone: Vec<&Vec<u8>> = in_base
            .iter()
            .filter(|p| !present.contains(p.as_slice()))
            .collect();
        gone.sort();
        deleted = gone.into_iter().map(|p| encode_path(p)).collect();
        scanned.entries.retain(|e| {
            e.kind != EntryKind::File || !in_base.contains(&e.path) || e.changed >= since
        });
    }
    fs_err::create_dir_all(backup_dir).map_err(io_err(backup_dir))?;
    let id = fresh_id(backup_dir, options.kind);
    let archive = backup_dir.join(format!("{id}.{}", options.compression.extension()));
    let partial = sidecar(&archive, "partial");
    let mut cleanup = Cleanup(vec![partial.clone()]);
    let level = options.level.unwrap_or(options.compression.default_level());
    let entries = &scanned.entries;
    let total: u64 = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    progress.start("backing up", Some(total), Unit::Bytes);

    let chunks = plan_chunks(entries, options.chunk_size as u64);
    let n_chunks = chunks.len();
    let shared = std::sync::Arc::new(scanned.entries.clone());
    let (compression, skip) = (options.compression, options.skip_unreadable);
    let jobs = chunks.into_iter().enumerate().map(move |(i, pieces)| {
        let entries = std::sync::Arc::clone(&shared);
        move || {
            build_chunk(
                &entries,
                &pieces,
                i + 1 == n_chunks,
                compression,
                level,
                skip,
            )
        }
    });
    let out = fs_err::File::create(&partial).map_err(io_err(&partial))?;
    let mut writer = ChunkWriter::new(out, entries);
    super::pipeline::in_order(jobs, super::pipeline::default_in_flight(), |built| {
        let built = built?;
        progress.advance(built.file_bytes);
        writer.append(built)
    })?;
    progress.finish();
    progress.start("syncing", None, Unit::Items);
    let written = writer.finish();
    let (chunk_meta, manifest_lines, skipped_in_build, archive_bytes, file_bytes) = written?;
    progress.finish();

    let mut skipped = scanned.skipped;
    skipped.extend(skipped_in_build);
    let count = |k: EntryKind| entries.iter().filter(|e| e.kind == k).count() as u64;
    let meta = Meta {
        format: FORMAT,
        id: id.clone(),
        kind: options.kind,
        base: options.base.as_ref().map(|b| b.meta.id.clone()),
        created: jiff::Timestamp::now().to_string(),
        scan_started: started.as_second(),
        tool: format!("kc-backup {}", env!("CARGO_PKG_VERSION")),
        compression: options.compression,
        level,
        mask: options.masks.clone(),
        store_prefix: scanned.store_prefix,
        files: count(EntryKind::File) - skipped.len().min(count(EntryKind::File) as usize) as u64,
        dirs: count(EntryKind::Dir),
        symlinks: count(EntryKind::Symlink),
        bytes: file_bytes,
        archive_bytes,
        chunks: chunk_meta,
        deleted,
        absent: Vec::new(),
        skipped,
    };
    let manifest_path = sidecar(&archive, "sha256");
    let meta_path = sidecar(&archive, "json");
    let manifest_partial = sidecar(&manifest_path, "partial");
    let meta_partial = sidecar(&meta_path, "partial");
    cleanup
        .0
        .extend([manifest_partial.clone(), meta_partial.clone()]);
    write_synced(&manifest_partial, &manifest_lines)?;
    let json = serde_json::to_vec_pretty(&meta).expect("Meta serialises");
    write_synced(&meta_partial, &json)?;

    // Check what was written before it gets its name.
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
    // The sidecars first, the archive last: `list` only sees a backup whose archive exists.
    rename(&manifest_partial, &manifest_path)?;
    rename(&meta_partial, &meta_path)?;
    rename(&partial, &archive)?;
    sync_dir(backup_dir)?;
    cleanup.0.clear();
    Ok(Backup { archive, meta })
}

type Written = (Vec<ChunkMeta>, Vec<u8>, Vec<Skipped>, u64, u64);

/// Appends built chunks in order, records where each lies, and collects the manifest (hashing
/// split files, whose pieces come from several chunks).
struct ChunkWriter<'e> {
    path: PathBuf,
    out: std::io::BufWriter<fs_err::File>,
    entries: &'e [Entry],
    metas: Vec<ChunkMeta>,
    lines: Vec<u8>,
    skipped: Vec<Skipped>,
    offset: u64,
    tar_offset: u64,
    file_bytes: u64,
    /// The split file being hashed: entry, hasher, bytes so far.
    split: Option<(usize, Sha256, u64)>,
}

impl<'e> ChunkWriter<'e> {
    fn new(out: fs_err::File, entries: &'e [Entry]) -> ChunkWriter<'e> {
        ChunkWriter {
            path: out.path().to_owned(),
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            entries,
            metas: Vec::new(),
            lines: Vec::new(),
            skipped: Vec::new(),
            offset: 0,
            tar_offset: 0,
            file_bytes: 0,
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
        for (entry, hexed) in &built.digests {
            self.lines
                .extend(manifest::line(hexed, &self.entries[*entry].path));
        }
        for (entry, data) in &built.split {
            if self.split.as_ref().map(|(e, _, _)| *e) != Some(*entry) {
                self.split = Some((*entry, Sha256::new(), 0));
            }
            let (_, hasher, hashed) = self.split.as_mut().expect("set just above");
            hasher.update(data);
            *hashed += data.len() as u64;
            if *hashed == self.entries[*entry].size {
                let (entry, hasher, _) = self.split.take().expect("set just above");
                self.lines.extend(manifest::line(
                    &hex(&hasher.finalize()),
                    &self.entries[entry].path,
                ));
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
        Ok((
            self.metas,
            self.lines,
            self.skipped,
            self.offset,
            self.file_bytes,
        ))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let mut f = fs_err::File::create(path).map_err(io_err(path))?;
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
