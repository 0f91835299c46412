//! Images: the read-only root filesystems a lab runs on, resolved to layers on this machine.
//!
//! The shape, one concept a file:
//! - [`ImageRef`] (`reference`) is what the notebook's `image:` says, parsed: `host`,
//!   `busybox`, `debian:<suite>`, an OCI reference ([`OciRef`], `oci_ref`), a directory or a
//!   rootfs tarball. Paths are resolved against the notebook's directory when parsed.
//! - [`resolve`] turns an `ImageRef` into an [`Image`]: read-only root layers, lowest first,
//!   ready to be overlayfs lowerdirs under a fresh writable layer (the runtime's job).
//! - [`Cache`] (`cache`) is the layer store: one directory per layer, named by its key, built
//!   once into a temporary directory and renamed into place, safe under concurrent labrun
//!   processes.
//! - `busybox` builds a minimal root from the host's static busybox; `tarball` unpacks a
//!   rootfs tarball through [`unpack()`] (`unpack`), the safe tar unpacker OCI layers go
//!   through too, with [`Whiteouts::Overlay`]; `elf` tells a static binary from a dynamic one;
//!   `inroot` looks a path up as the image itself would see it (for the shell hint).
//! - [`host_hidden_paths`] (`hidden`) lists what the `host` image must hide.
//! - `debian` builds `debian:<suite>` with debootstrap; `layer_key` names setup steps' layers
//!   (built by the container backend), `layer_info` and `maintenance` serve `labrun image`.
//! - `registry` pulls OCI images, each layer a cached layer of its own.
//!
//! Every `ImageError` means the environment could not be built
//! (exit status 3, `exit_code::ENVIRONMENT`), and its message names the image, file or path.

pub mod busybox;
pub mod cache;
pub mod debian;
pub mod digest;
pub mod digest_memo;
pub mod elf;
pub mod hidden;
pub mod inroot;
pub mod layer_info;
pub mod layer_key;
pub mod maintenance;
pub mod oci_ref;
pub mod reference;
pub mod registry;
pub mod run_config;
pub mod tarball;
pub mod unpack;
pub mod vm_files;

use std::path::{Path, PathBuf};

pub use cache::Cache;
pub use hidden::{Hidden, host_hidden_paths, host_hidden_paths_of};
pub use layer_info::LayerInfo;
pub use oci_ref::OciRef;
pub use reference::ImageRef;
pub use run_config::RunConfig;
pub use unpack::{UnpackOptions, Whiteouts, unpack};

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Read-only root layers, lowest first (overlayfs lowerdirs are listed highest first:
    /// reverse these).
    pub layers: Vec<PathBuf>,
    pub kind: ImageKind,
    /// `bash` when the image has `/bin/bash` or `/usr/bin/bash`, else `sh` when it has
    /// `/bin/sh` or `/usr/bin/sh`, else none (the image has no shell labrun knows).
    pub shell_hint: Option<String>,
    /// Things worth telling the user about how the image was built (device nodes a
    /// non-root unpack skipped, say). Kept with the layer, so a cached image says them too.
    pub notes: Vec<String>,
    /// What an OCI image's config says its processes start with (empty for other images).
    pub run_config: RunConfig,
}

/// What the layers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// This machine's own root (`/`): the runtime hides [`host_hidden_paths`] in it, and
    /// handles the rootless case (where `/` cannot be an overlay lowerdir) itself.
    Host,
    /// Directory trees labrun may use as they are: a cached layer or the author's directory.
    Unpacked,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The notebook's `image:` names something that is not there or is not an image.
    #[error("image '{image}' {problem}")]
    Invalid { image: String, problem: String },
    #[error(
        "the busybox image needs a static busybox: install the Debian package busybox-static \
         (apt-get install busybox-static){detail}"
    )]
    NoStaticBusybox { detail: String },
    /// A tarball (or, later, an OCI layer) that cannot be unpacked safely or at all.
    #[error("{archive}: {message}")]
    Archive { archive: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ImageError {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_at(path: &Path, what: &str, source: std::io::Error) -> ImageError {
        ImageError::io(format!("{what} {}", path.display()), source)
    }
}

/// Resolves an image to its layers, building (once, into the cache) what needs building.
/// Blocking: it may unpack gigabytes, so async callers run it on a blocking thread.
pub fn resolve(r: &ImageRef, cache: &Cache) -> Result<Image, ImageError> {
    let mut run_config = RunConfig::default();
    let (layers, kind, notes) = match r {
        ImageRef::Host => (vec![PathBuf::from("/")], ImageKind::Host, Vec::new()),
        ImageRef::Busybox => {
            let built = busybox::build(cache)?;
            (vec![built.path], ImageKind::Unpacked, built.notes)
        }
        ImageRef::Dir(dir) => {
            let dir = dir.canonicalize().map_err(|e| ImageError::Invalid {
                image: dir.display().to_string(),
                problem: format!("cannot be opened: {e}"),
            })?;
            if !dir.is_dir() {
                return Err(ImageError::Invalid {
                    image: dir.display().to_string(),
                    problem: "is not a directory".into(),
                });
            }
            (vec![dir], ImageKind::Unpacked, Vec::new())
        }
        ImageRef::Tarball(file) => {
            let built = tarball::build(file, cache)?;
            (vec![built.path], ImageKind::Unpacked, built.notes)
        }
        ImageRef::Debian { suite } => {
            let built = debian::build(suite, cache)?;
            (vec![built.path], ImageKind::Unpacked, built.notes)
        }
        ImageRef::Oci(oci) => {
            let pulled = registry::pull(oci, cache)?;
            run_config = pulled.run_config;
            (pulled.layers, ImageKind::Unpacked, pulled.notes)
        }
    };
    let shell_hint = inroot::shell_hint(&layers);
    Ok(Image {
        layers,
        kind,
        shell_hint,
        notes,
        run_config,
    })
}
