//! The `.sha256` manifest, and paths as text in the `.json`.
//!
//! Manifest lines are what GNU `sha256sum` writes and `sha256sum -c` reads: `<hex>  <path>`;
//! a path holding a backslash, newline or carriage return is escaped (`\\`, `\n`, `\r`) and its
//! line starts with a backslash. Other bytes, non-UTF-8 ones included, are written as they are.
//!
//! In JSON, where strings must be UTF-8, a path is written with `%` and every byte that is not
//! part of valid UTF-8 as `%XX`: lossless, and readable for the usual names.

use super::ArchiveError;
use std::path::Path;

/// One manifest line for a file's digest (with its newline).
pub fn line(hex: &str, path: &[u8]) -> Vec<u8> {
    let special = path.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    let mut out = Vec::with_capacity(hex.len() + path.len() + 4);
    if special {
        out.push(b'\\');
    }
    out.extend_from_slice(hex.as_bytes());
    out.extend_from_slice(b"  ");
    for &b in path {
        match (special, b) {
            (true, b'\\') => out.extend_from_slice(b"\\\\"),
            (true, b'\n') => out.extend_from_slice(b"\\n"),
            (true, b'\r') => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
    out
}

/// Reads a manifest: `(hex digest, path bytes)` per line.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut out = Vec::new();
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        if let Some(parsed) = parse_line(path, n + 1, raw)? {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// One line (without its newline), numbered from 1 for the error; `None` for an empty line.
fn parse_line(
    path: &Path,
    number: usize,
    raw: &[u8],
) -> Result<Option<(String, Vec<u8>)>, ArchiveError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let invalid = || ArchiveError::Invalid {
        path: path.to_owned(),
        message: format!("line {number}: not a sha256sum line"),
    };
    let (escaped, raw) = match raw.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if raw.len() < 66 || &raw[64..66] != b"  " {
        return Err(invalid());
    }
    let hex = std::str::from_utf8(&raw[..64])
        .map_err(|_| invalid())?
        .to_owned();
    let name = &raw[66..];
    let name = if escaped {
        let mut out = Vec::with_capacity(name.len());
        let mut it = name.iter();
        while let Some(&b) = it.next() {
            if b == b'\\' {
                match it.next() {
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    _ => return Err(invalid()),
                }
            } else {
                out.push(b);
            }
        }
        out
    } else {
        name.to_vec()
    };
    Ok(Some((hex, name)))
}

/// Reads and parses the manifest file at `path`, whole: for small manifests (a pre-change
/// backup's). A backup's own manifest is read with [`Reader`], a line at a time.
pub fn read(path: &Path) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let bytes = fs_err::read(path).map_err(super::io_err(path))?;
    parse(path, &bytes)
}

/// A manifest read a line at a time: memory does not grow with the number of files.
pub struct Reader {
    path: std::path::PathBuf,
    input: std::io::BufReader<std::fs::File>,
    line: Vec<u8>,
    number: usize,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, ArchiveError> {
        let file = std::fs::File::open(path).map_err(super::io_err(path))?;
        Ok(Reader {
            path: path.to_owned(),
            input: std::io::BufReader::with_capacity(1 << 16, file),
            line: Vec::new(),
            number: 0,
        })
    }

    /// The number of the line `next` gave last (from 1).
    pub fn line_number(&self) -> usize {
        self.number
    }
}

impl Iterator for Reader {
    type Item = Result<(String, Vec<u8>), ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        loop {
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(super::io_err(&self.path)(e))),
            }
            self.number += 1;
            let raw = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            match parse_line(&self.path, self.number, raw) {
                Ok(None) => continue,
                Ok(Some(parsed)) => return Some(Ok(parsed)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A path's bytes as JSON-safe text (see the module docs).
pub fn encode_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_path`].
pub fn decode_path(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_like_gnu_sha256sum_and_parse_back() {
        let hex = "3e".repeat(32);
        assert_eq!(line(&hex, b"a b/c"), format!("{hex}  a b/c\n").into_bytes());
        assert_eq!(
            line(&hex, b"back\\slash"),
            format!("\\{hex}  back\\\\slash\n").into_bytes()
        );
        assert_eq!(
            line(&hex, b"x\ny\rz"),
            format!("\\{hex}  x\\ny\\rz\n").into_bytes()
        );
        let mut all = Vec::new();
        for name in [&b"a b/c"[..], b"back\\slash", b"x\ny\rz", b"lat\xe9"] {
            all.extend(line(&hex, name));
        }
        let parsed = parse(Path::new("m"), &all).expect("parses");
        let names: Vec<&[u8]> = parsed.iter().map(|(_, n)| n.as_slice()).collect();
        assert_eq!(
            names,
            [&b"a b/c"[..], b"back\\slash", b"x\ny\rz", b"lat\xe9"]
        );
        assert!(parse(Path::new("m"), b"nonsense\n").is_err());
    }

    #[test]
    fn json_paths_are_lossless() {
        for p in [
            &b"store/mail/a b/Caf\xc3\xa9"[..],
            b"100%/x",
            b"lat\xe9/\xff\xfe",
            b"",
        ] {
            assert_eq!(decode_path(&encode_path(p)), p);
        }
        assert_eq!(encode_path(b"100%/lat\xe9"), "100%25/lat%E9");
    }
}
