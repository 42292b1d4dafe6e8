//! Chunks: cutting the entries into pieces of a few MiB of tar, and building each piece (read,
//! hash, tar-encode, compress) independently, so that chunks can be built on all cores.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::scan::{Entry, EntryKind};
use super::{ArchiveError, Compression, Skipped, encode_path, io_err};

/// The two zero blocks that end a tar stream, as the archive's last chunk.
pub(crate) fn end_of_archive(compression: Compression, level: i32) -> Result<Built, ArchiveError> {
    Ok(Built {
        compressed: compress(&[0u8; 1024], compression, level)?,
        tar_len: 1024,
        ..Built::default()
    })
}

/// A piece of an entry that goes into one chunk.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    entry: Entry,
    /// For a file: which bytes of it.
    offset: u64,
    len: u64,
}

/// What a chunk task hands the writer.
#[derive(Default)]
pub(crate) struct Built {
    pub compressed: Vec<u8>,
    pub tar_len: u64,
    pub lead: u64,
    pub file_bytes: u64,
    /// Digests of files wholly inside this chunk: path, hex.
    pub digests: Vec<(Vec<u8>, String)>,
    /// Pieces of split files, in order, for the writer to hash: path, file size, bytes.
    pub split: Vec<(Vec<u8>, u64, Vec<u8>)>,
    pub skipped: Vec<Skipped>,
    /// Entries by kind, for the counts: files, directories, symlinks.
    pub counts: [u64; 3],
}

fn tar_header_blocks(path: &[u8]) -> u64 {
    // A header, plus a GNU long-name entry for paths over 100 bytes.
    if path.len() > 100 {
        2 + (path.len() as u64 + 1).div_ceil(512)
    } else {
        1
    }
}

/// Cuts the entries, as they come, into chunks of about `size` tar bytes: whole entries, except
/// that a file larger than a chunk is split across several.
#[derive(Debug)]
pub(crate) struct Planner {
    size: u64,
    current: Vec<Piece>,
    used: u64,
}

impl Planner {
    pub(crate) fn new(size: u64) -> Planner {
        Planner {
            size,
            current: Vec::new(),
            used: 0,
        }
    }

    fn close(&mut self, out: &mut Vec<Vec<Piece>>) {
        if !self.current.is_empty() {
            out.push(std::mem::take(&mut self.current));
        }
        self.used = 0;
    }

    /// Adds an entry; chunks that are full go to `out`.
    pub(crate) fn push(&mut self, e: Entry, out: &mut Vec<Vec<Piece>>) {
        let size = self.size;
        let header = tar_header_blocks(&e.path) * 512;
        let data = if e.kind == EntryKind::File {
            e.size.div_ceil(512) * 512
        } else {
            0
        };
        let len = e.size;
        if self.used + header + data <= size || (self.current.is_empty() && data <= size) {
            self.current.push(Piece {
                entry: e,
                offset: 0,
                len,
            });
            self.used += header + data;
            return;
        }
        if data <= size {
            self.close(out);
            self.current.push(Piece {
                entry: e,
                offset: 0,
                len,
            });
            self.used = header + data;
            return;
        }
        // Larger than a chunk: split. The first piece fills this chunk if a useful part is left.
        if size.saturating_sub(self.used) < header + (64 << 10) {
            self.close(out);
        }
        let mut offset = 0;
        let mut room = size.saturating_sub(self.used + header);
        while offset < e.size {
            let len = room.min(e.size - offset).max(1);
            self.current.push(Piece {
                entry: e.clone(),
                offset,
                len,
            });
            offset += len;
            if offset < e.size {
                self.close(out);
                room = size;
            } else {
                self.used = len.div_ceil(512) * 512;
            }
        }
    }

    /// The last chunk, if any entries are left.
    pub(crate) fn finish(mut self, out: &mut Vec<Vec<Piece>>) {
        self.close(out);
    }
}

fn changed(path: &Path, what: impl Into<String>) -> ArchiveError {
    ArchiveError::Changed {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// Builds one chunk: tar bytes, then compressed.
pub(crate) fn build_chunk(
    pieces: &[Piece],
    compression: Compression,
    level: i32,
    skip_unreadable: bool,
) -> Result<Built, ArchiveError> {
    let mut tar = tar::Builder::new(Vec::with_capacity(
        pieces.iter().map(|p| p.len as usize + 1024).sum(),
    ));
    tar.mode(tar::HeaderMode::Complete);
    let mut built = Built::default();
    let mut seen_header = false;
    for piece in pieces {
        let e = &piece.entry;
        if piece.offset > 0 {
            append_rest(tar.get_mut(), &mut built, piece)?;
            if !seen_header {
                built.lead = tar.get_ref().len() as u64;
            }
            continue;
        }
        seen_header = true;
        built.counts[e.kind as usize] += 1;
        match e.kind {
            EntryKind::Dir | EntryKind::Symlink => append_dir_or_link(&mut tar, e)?,
            EntryKind::File => append_file(&mut tar, &mut built, piece, skip_unreadable)?,
        }
    }
    if !seen_header {
        built.lead = tar.get_ref().len() as u64;
    }
    let mut bytes = tar.into_inner().map_err(|e| ArchiveError::Io {
        path: PathBuf::from("<tar>"),
        source: e,
    })?;
    // `into_inner` ends the stream with two zero blocks: the archive's end is a chunk of its own.
    bytes.truncate(bytes.len() - 1024);
    built.tar_len = bytes.len() as u64;
    built.compressed = compress(&bytes, compression, level)?;
    Ok(built)
}

fn tar_err(e: &Entry) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: e.abs.clone(),
        source,
    }
}

/// The rest of a split file: raw data, then padding after its last piece.
fn append_rest(out: &mut Vec<u8>, built: &mut Built, piece: &Piece) -> Result<(), ArchiveError> {
    let e = &piece.entry;
    let mut data = vec![0u8; piece.len as usize];
    let file = fs_err::File::open(&e.abs).map_err(io_err(&e.abs))?;
    file.file()
        .read_exact_at(&mut data, piece.offset)
        .map_err(|_| changed(&e.abs, "it shrank"))?;
    let end = piece.offset + piece.len;
    if end == e.size {
        check_no_more(file.file(), end, &e.abs)?;
    }
    out.extend_from_slice(&data);
    if end == e.size {
        let pad = (512 - e.size % 512) % 512;
        out.resize(out.len() + pad as usize, 0);
    }
    built.file_bytes += piece.len;
    built.split.push((e.path.clone(), e.size, data));
    Ok(())
}

/// A directory or a symbolic link: its header (and a link's target).
fn append_dir_or_link(tar: &mut tar::Builder<Vec<u8>>, e: &Entry) -> Result<(), ArchiveError> {
    let path = Path::new(OsStr::from_bytes(&e.path));
    let meta = fs_err::symlink_metadata(&e.abs).map_err(io_err(&e.abs))?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    if e.kind == EntryKind::Dir {
        tar.append_data(&mut header, path, std::io::empty())
            .map_err(tar_err(e))
    } else {
        let target = fs_err::read_link(&e.abs).map_err(io_err(&e.abs))?;
        tar.append_link(&mut header, path, &target)
            .map_err(tar_err(e))
    }
}

/// A file whole, or the first piece of a split one (its header says the whole size); an
/// unreadable whole file is recorded and left out when `skip_unreadable`.
fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    built: &mut Built,
    piece: &Piece,
    skip_unreadable: bool,
) -> Result<(), ArchiveError> {
    let e = &piece.entry;
    let path = Path::new(OsStr::from_bytes(&e.path));
    let file = match fs_err::File::open(&e.abs) {
        Ok(f) => f,
        Err(err) if skip_unreadable && piece.len == e.size => {
            built.counts[e.kind as usize] -= 1;
            built.skipped.push(Skipped {
                path: encode_path(&e.path),
                error: err.to_string(),
            });
            return Ok(());
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
            .push((e.path.clone(), format!("{:x}", Sha256::digest(&data))));
        tar.append_data(&mut header, path, data.as_slice())
            .map_err(tar_err(e))?;
    } else {
        tar.append_data(&mut header, path, std::io::empty())
            .map_err(tar_err(e))?;
        tar.get_mut().extend_from_slice(&data);
        built.split.push((e.path.clone(), e.size, data));
    }
    built.file_bytes += piece.len;
    Ok(())
}

fn check_no_more(file: &std::fs::File, size: u64, path: &Path) -> Result<(), ArchiveError> {
    let mut probe = [0u8; 1];
    match file.read_at(&mut probe, size) {
        Ok(0) => Ok(()),
        Ok(_) => Err(changed(path, "it grew")),
        Err(e) => Err(io_err(path)(e)),
    }
}

pub(crate) fn compress(
    tar: &[u8],
    compression: Compression,
    level: i32,
) -> Result<Vec<u8>, ArchiveError> {
    let err = |e: std::io::Error| ArchiveError::Io {
        path: PathBuf::from("<compressor>"),
        source: e,
    };
    match compression {
        Compression::Gzip => {
            // libdeflate compresses a whole buffer at once into one gzip member; its levels
            // follow gzip's (1 fastest, 9 smallest) and run faster than zlib's at a smaller size.
            let level = libdeflater::CompressionLvl::new(level.clamp(0, 9))
                .map_err(|e| err(std::io::Error::other(format!("gzip level {level}: {e:?}"))))?;
            let mut c = libdeflater::Compressor::new(level);
            let mut out = vec![0u8; c.gzip_compress_bound(tar.len())];
            let n = c
                .gzip_compress(tar, &mut out)
                .map_err(|e| err(std::io::Error::other(format!("{e:?}"))))?;
            out.truncate(n);
            out.shrink_to_fit();
            Ok(out)
        }
        Compression::Zstd => {
            let mut c = zstd::bulk::Compressor::new(level).map_err(err)?;
            // The frame checksum lets the check after writing prove each chunk's bytes.
            c.include_checksum(true).map_err(err)?;
            c.compress(tar).map_err(err)
        }
    }
}
