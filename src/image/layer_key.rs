//! Layer keys of setup steps: a step's layer is named by its parent's key and its text, as
//! Docker's build cache names a `RUN` step, so an unchanged notebook rebuilds nothing and a
//! changed step rebuilds only itself and the steps after it.
//!
//! The first parent is the image itself:
//! - `host`: the machine's release (`/etc/os-release`) and its package databases (size, time
//!   and inode of dpkg's status file, rpm's and apk's databases), so that layers are never
//!   stacked on a host whose packages changed under them;
//! - anything else: each of its layers' path and identity (inode and change time), so a layer
//!   removed and built again (a newer Debian, a new tarball at the same path) is a new parent;
//!   with, for an OCI image whose config sets `Env`, `WorkingDir` or `User`, that config (the
//!   steps run with it).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::digest::recipe_key;
use super::{Image, ImageError, ImageKind};

/// Package databases whose change means the host's packages changed.
const HOST_PACKAGE_DATABASES: &[&str] = &[
    "/var/lib/dpkg/status",
    "/var/lib/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/lib/apk/db/installed",
];

/// The key of a setup step's layer on `parent`.
pub fn step_key(parent: &str, step: &str) -> String {
    format!(
        "step-{}",
        recipe_key(&["labrun setup step", "1", parent, step])
    )
}

/// The key a resolved image gives the first setup step's parent.
pub fn image_key(image: &Image) -> Result<String, ImageError> {
    let key = match image.kind {
        ImageKind::Host => host_key(Path::new("/")),
        ImageKind::Unpacked => layers_key(&image.layers)?,
    };
    if image.run_config.is_empty() {
        return Ok(key);
    }
    let config = image.run_config.identity();
    Ok(format!(
        "config-{}",
        recipe_key(&["labrun image config", "1", &key, &config])
    ))
}

/// The host's identity under `root`: its release file and the identity of its package
/// databases (not their contents: dpkg's status file is megabytes, and this runs every time).
pub fn host_key(root: &Path) -> String {
    let release = fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
    let mut parts = vec!["labrun host".to_string(), "1".to_string(), release.clone()];
    for db in HOST_PACKAGE_DATABASES {
        let path = root.join(db.trim_start_matches('/'));
        parts.push(match fs::metadata(&path) {
            Ok(m) => identity(&path, &m),
            Err(_) => format!("{db} absent"),
        });
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("host-{}", recipe_key(&parts))
}

fn layers_key(layers: &[PathBuf]) -> Result<String, ImageError> {
    let mut parts = vec!["labrun layers".to_string(), "1".to_string()];
    for layer in layers {
        let meta = fs::metadata(layer).map_err(|e| ImageError::io_at(layer, "reading", e))?;
        parts.push(identity(layer, &meta));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(format!("layers-{}", recipe_key(&parts)))
}

/// A file's path and which file it is: inode, size and change and modification times.
fn identity(path: &Path, m: &fs::Metadata) -> String {
    format!(
        "{} {} {} {}.{} {}.{}",
        path.display(),
        m.ino(),
        m.size(),
        m.ctime(),
        m.ctime_nsec(),
        m.mtime(),
        m.mtime_nsec()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_key_follows_its_parent_and_its_text() {
        let a = step_key("host-1", "apt-get install -y jq");
        assert!(a.starts_with("step-") && a.len() == 5 + 64);
        assert_eq!(a, step_key("host-1", "apt-get install -y jq"));
        assert_ne!(a, step_key("host-2", "apt-get install -y jq"));
        assert_ne!(a, step_key("host-1", "apt-get install -y jq "));
    }

    #[test]
    fn the_host_key_follows_its_package_database() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        fs::write(root.path().join("etc/os-release"), "ID=debian\n").unwrap();
        let status = root.path().join("var/lib/dpkg/status");
        fs::write(&status, "Package: a\n").unwrap();
        let before = host_key(root.path());
        assert_eq!(before, host_key(root.path()));
        fs::write(&status, "Package: a\n\nPackage: b\n").unwrap();
        assert_ne!(before, host_key(root.path()));
    }
}
