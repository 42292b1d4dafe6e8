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
        if raw.is_empty() {
            continue;
        }
        let invalid = || ArchiveError::Invalid {
            path: path.to_owned(),
            message: format!("line {}: not a sha256sum line", n + 1),
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
        out.push((hex, name));
    }
    Ok(out)
}

/// Reads and parses the manifest file at `path`.
pub fn read(path: &Path) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let bytes = fs_err::read(path).map_err(super::io_err(path))?;
    parse(path, &bytes)
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
