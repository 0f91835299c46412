//! `debian:<suite>`: a minimal Debian root made by debootstrap (`--variant=minbase`) once,
//! keyed by the suite, then used from the cache.
//!
//! The mirror is `LABRUN_DEBIAN_MIRROR` when set, else the first Debian mirror this machine's
//! apt uses (`/etc/apt/sources.list` and `sources.list.d/`), else deb.debian.org. debootstrap
//! chroots and makes device nodes, so it needs labrun run as root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cache::{Built, remove_tree};
use super::digest::recipe_key;
use super::{Cache, ImageError};

const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The `debian:<suite>` root, built with debootstrap the first time.
pub fn build(suite: &str, cache: &Cache) -> Result<Built, ImageError> {
    let image = format!("debian:{suite}");
    let key = format!(
        "debian-{}",
        recipe_key(&["labrun debian", "1", "minbase", suite])
    );
    if cache.layer_path(&key).is_dir() {
        return cache.get_or_build(&key, |_| Ok(Vec::new()));
    }
    let debootstrap =
        crate::env::find_program("debootstrap").ok_or_else(|| ImageError::Invalid {
            image: image.clone(),
            problem: "needs debootstrap: install the Debian package debootstrap \
                  (apt-get install debootstrap)"
                .into(),
        })?;
    if !nix::unistd::geteuid().is_root() {
        return Err(ImageError::Invalid {
            image,
            problem: "is built by debootstrap, which needs root: run labrun as root once to \
                      build it"
                .into(),
        });
    }
    let mirror = mirror();
    let built = cache.get_or_build(&key, |dest| {
        bootstrap(&debootstrap, suite, &mirror, dest).map_err(|problem| ImageError::Invalid {
            image: image.clone(),
            problem,
        })?;
        Ok(Vec::new())
    })?;
    Ok(built)
}

fn bootstrap(debootstrap: &Path, suite: &str, mirror: &str, dest: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let out = Command::new(debootstrap)
        .args(["--variant=minbase", suite])
        .arg(dest)
        .arg(mirror)
        .stdin(Stdio::null())
        .env("LC_ALL", "C.UTF-8")
        .output()
        .map_err(|e| format!("could not run debootstrap: {e}"))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "could not be built: debootstrap {suite} from {mirror} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        ));
    }
    // The packages debootstrap downloaded stay in apt's cache: a third of the root.
    if let Ok(entries) = fs::read_dir(dest.join("var/cache/apt/archives")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "deb") {
                let _ = remove_tree(&entry.path());
            }
        }
    }
    Ok(())
}

/// The Debian mirror to use (see the module documentation).
pub fn mirror() -> String {
    if let Some(m) = std::env::var_os("LABRUN_DEBIAN_MIRROR").filter(|m| !m.is_empty()) {
        return m.to_string_lossy().into_owned();
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|text| mirror_in(&text))
        .unwrap_or_else(|| DEFAULT_MIRROR.into())
}

/// The first Debian archive (not its security archive) an apt sources file names, in the
/// one-line (`deb URI suite ...`) or the deb822 (`URIs: URI`) form.
fn mirror_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = l.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            }
        })
        .find(|uri| uri.trim_end_matches('/').ends_with("/debian"))
        .map(|uri| uri.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_comes_from_apt_sources_in_either_form() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian-security\n\nTypes: deb\n\
                      URIs: http://mirror.example/debian/\nSuites: bookworm\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let classic = "# deb http://old/debian x main\ndeb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(classic).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_in("deb http://ubuntu/ubuntu noble main"), None);
    }
}
