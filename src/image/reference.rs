//! `image:` as the notebook writes it, parsed into an [`ImageRef`].
//!
//! The reading, in order:
//! 1. `host`, `busybox`: the built-in images. `debian:<suite>` (`debian` alone means
//!    `debian:stable`): a Debian suite, built by debootstrap.
//! 2. A path: text that starts with `/`, `./` or `../` (or is `.` or `..`) always is one; text
//!    that contains a `/` or ends in `.tar`, `.tar.gz` or `.tgz` is one when that path exists
//!    (relative to the notebook's directory). A name ending in a tarball suffix is a tarball
//!    whether or not it exists (so `x.tar` that is missing says so), anything else a directory.
//!    Paths are canonicalised here, so the image does not depend on the working directory.
//! 3. Anything else is an OCI reference (`alpine:3.19`, `ghcr.io/o/app@sha256:...`).

use std::path::{Path, PathBuf};

use super::{ImageError, OciRef};

/// Which image a notebook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// This machine's root, read-only, with its secrets hidden (the default).
    Host,
    /// A minimal root around the host's static busybox.
    Busybox,
    /// A directory tree used as it is (canonical path).
    Dir(PathBuf),
    /// A rootfs tarball, `.tar` or gzip-compressed (canonical path).
    Tarball(PathBuf),
    /// A Debian suite (`bookworm`, `stable`), built by debootstrap.
    Debian { suite: String },
    /// An image from an OCI registry, pulled by `registry`.
    Oci(OciRef),
}

const TAR_SUFFIXES: [&str; 3] = [".tar", ".tar.gz", ".tgz"];

impl ImageRef {
    /// Parses `text` as written in the notebook; relative paths resolve against
    /// `notebook_dir`.
    pub fn parse(text: &str, notebook_dir: &Path) -> Result<ImageRef, ImageError> {
        let invalid = |problem: String| ImageError::Invalid {
            image: text.to_string(),
            problem,
        };
        let t = text.trim();
        match t {
            "" => return Err(invalid("is empty".into())),
            "host" => return Ok(ImageRef::Host),
            "busybox" => return Ok(ImageRef::Busybox),
            "debian" => {
                return Ok(ImageRef::Debian {
                    suite: "stable".into(),
                });
            }
            _ => {}
        }
        if let Some(suite) = t.strip_prefix("debian:") {
            return if is_suite(suite) {
                Ok(ImageRef::Debian {
                    suite: suite.to_string(),
                })
            } else {
                Err(invalid(format!(
                    "does not name a Debian suite ('{suite}': lowercase letters, digits, '-' and '.')"
                )))
            };
        }
        let tar_like = TAR_SUFFIXES.iter().any(|s| t.ends_with(s));
        let explicit = t.starts_with('/')
            || t.starts_with("./")
            || t.starts_with("../")
            || t == "."
            || t == "..";
        let path = notebook_dir.join(t);
        let exists = path.symlink_metadata().is_ok();
        if explicit || tar_like || (t.contains('/') && exists) {
            return parse_path(&path, tar_like).map_err(invalid);
        }
        OciRef::parse(t).map(ImageRef::Oci).map_err(|why| {
            invalid(format!(
                "is not host, busybox, debian:<suite>, a path (./dir, ./rootfs.tar) or an OCI \
                 image reference: {why}"
            ))
        })
    }

    /// The image as reports name it: `host`, `busybox`, `debian:bookworm`, the full OCI
    /// reference, or the path.
    pub fn display(&self) -> String {
        match self {
            ImageRef::Host => "host".into(),
            ImageRef::Busybox => "busybox".into(),
            ImageRef::Dir(p) | ImageRef::Tarball(p) => p.display().to_string(),
            ImageRef::Debian { suite } => format!("debian:{suite}"),
            ImageRef::Oci(r) => r.to_string(),
        }
    }
}

fn parse_path(path: &Path, tar_like: bool) -> Result<ImageRef, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if path.symlink_metadata().is_ok() {
                "is a symbolic link to nothing".into()
            } else {
                "does not exist".into()
            });
        }
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("cannot be resolved: {e}"))?;
    if tar_like {
        if meta.is_file() {
            Ok(ImageRef::Tarball(canonical))
        } else {
            Err("is not a file (a rootfs tarball was expected)".into())
        }
    } else if meta.is_dir() {
        Ok(ImageRef::Dir(canonical))
    } else {
        Err("is not a directory (a rootfs tarball must be named .tar, .tar.gz or .tgz)".into())
    }
}

fn is_suite(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
}
