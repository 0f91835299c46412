//! The rootfs tarball image (`./rootfs.tar`, `.tar.gz`, `.tgz`): unpacked once into the
//! cache, keyed by the SHA-256 of the file's bytes.
//!
//! Compression is told by the file's first bytes, not its name: gzip is read; xz, zstd and
//! bzip2 are named in a clear error. The file is hashed again while it is unpacked, so a file
//! that changes in between is caught rather than cached under the old digest.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::cache::Built;
use super::digest::HashingReader;
use super::unpack::{UnpackOptions, Unpacked, unpack};
use super::{Cache, ImageError};

/// Bump when the unpacked tree for the same bytes would differ (a new unpack rule).
const FORMAT: &str = "1";

/// How many skipped entries a note names before it only counts.
const NAMED_SKIPS: usize = 5;

/// The cached layer for the tarball `file`, unpacked with the default options.
pub fn build(file: &Path, cache: &Cache) -> Result<Built, ImageError> {
    build_with(file, cache, &UnpackOptions::new(file.display().to_string()))
}

/// The cached layer for the tarball `file`, unpacked with `opts` (its label names the file
/// in errors).
pub fn build_with(file: &Path, cache: &Cache, opts: &UnpackOptions) -> Result<Built, ImageError> {
    let digest = cache
        .file_digest(file)
        .map_err(|e| ImageError::io_at(file, "reading the image", e))?;
    // What decides the tree: the bytes, the unpacker's format, and whether owners and device
    // nodes are kept (root and non-root unpacks differ). Limits only refuse, so are not in it.
    let key = format!(
        "tar-{}",
        opts.tree_key("labrun rootfs tarball", FORMAT, &digest)
    );
    cache.get_or_build(&key, |dest| {
        let io_err = |e: io::Error| ImageError::io_at(file, "reading the image", e);
        std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| ImageError::io_at(dest, "preparing", e))?;
        let mut f = File::open(file).map_err(io_err)?;
        let compression = sniff(&mut f).map_err(io_err)?;
        f.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let raw = HashingReader::new(BufReader::with_capacity(256 << 10, f));
        let (done, raw) = match compression {
            Compression::None => {
                let mut raw = raw;
                (unpack(&mut raw, dest, opts)?, raw)
            }
            Compression::Gzip => {
                let mut gz = MultiGzDecoder::new(raw);
                (unpack(&mut gz, dest, opts)?, gz.into_inner())
            }
            Compression::Unsupported(name) => {
                return Err(ImageError::Archive {
                    archive: opts.label.clone(),
                    message: format!(
                        "is compressed with {name}; labrun reads tarballs plain or \
                         gzip-compressed (.tar, .tar.gz, .tgz)"
                    ),
                });
            }
        };
        if raw.finish_reading().map_err(io_err)? != digest {
            return Err(ImageError::Archive {
                archive: opts.label.clone(),
                message: "changed while labrun was reading it; run again".into(),
            });
        }
        Ok(skipped_notes(&opts.label, &done))
    })
}

/// The note an unpack's skipped entries make (none when nothing was skipped).
pub(crate) fn skipped_notes(label: &str, done: &Unpacked) -> Vec<String> {
    if done.skipped.is_empty() {
        return Vec::new();
    }
    let mut named = done.skipped[..done.skipped.len().min(NAMED_SKIPS)].join(", ");
    if done.skipped.len() > NAMED_SKIPS {
        named.push_str(&format!(" and {} more", done.skipped.len() - NAMED_SKIPS));
    }
    vec![format!(
        "{label}: skipped {} entr{}: {named}",
        done.skipped.len(),
        if done.skipped.len() == 1 { "y" } else { "ies" }
    )]
}

enum Compression {
    None,
    Gzip,
    Unsupported(&'static str),
}

fn sniff(f: &mut File) -> io::Result<Compression> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Unsupported("xz")
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Unsupported("zstd")
    } else if m.starts_with(b"BZh") {
        Compression::Unsupported("bzip2")
    } else {
        Compression::None
    })
}
