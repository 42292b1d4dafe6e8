//! SHA-256 as the toolkit writes it: lower-case hex, the form of backup manifests
//! (`sha256sum -c` reads them), journals and change steps. A leaf: anything may use it.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The SHA-256 of some bytes, as lowercase hex (the manifest's form).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The SHA-256 of a file's content, read as a stream (a mailbox may hold files larger than
/// memory allows), and its length.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((bytes, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_sha256sums() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
