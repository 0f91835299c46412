//! Looking a path up inside an image root as a process chrooted there would: symbolic links
//! resolve against the root (an absolute `bin -> /usr/bin` stays inside it), and `..` stops at
//! the root. Used for the shell hint, where a usr-merged image's `/bin/bash` is a link.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// How many links one lookup follows before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// The host path `path` names inside `root`, when it exists there.
pub fn lookup(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut at: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            at.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&at);
        here.push(&name);
        let meta = fs::symlink_metadata(&here).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = fs::read_link(&here).ok()?;
            if target.is_absolute() {
                at.clear();
            }
            todo.extend(components(&target).into_iter().rev());
        } else {
            at.push(name);
        }
    }
    let mut found = root.to_path_buf();
    found.extend(&at);
    Some(found)
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// `bash` when some layer has `/bin/bash` or `/usr/bin/bash` (a file), else `sh` likewise,
/// else none. Layers are lowest first; each is looked at on its own.
pub fn shell_hint(layers: &[PathBuf]) -> Option<String> {
    let has = |name: &str| {
        layers.iter().rev().any(|layer| {
            ["bin", "usr/bin"]
                .iter()
                .any(|dir| lookup(layer, &Path::new(dir).join(name)).is_some_and(|p| p.is_file()))
        })
    };
    ["bash", "sh"]
        .into_iter()
        .find(|name| has(name))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/bash"), "").unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("../../../../../etc/passwd", root.join("usr/bin/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            lookup(root, Path::new("/bin/bash")),
            Some(root.join("usr/bin/bash"))
        );
        // `..` stops at the root: this is the image's /etc/passwd, which is not there.
        assert_eq!(lookup(root, Path::new("bin/up")), None);
        assert_eq!(lookup(root, Path::new("loop")), None);
        assert_eq!(shell_hint(&[root.to_path_buf()]).as_deref(), Some("bash"));
        fs::remove_file(root.join("usr/bin/bash")).unwrap();
        assert_eq!(shell_hint(&[root.to_path_buf()]), None);
        symlink("busybox", root.join("usr/bin/sh")).unwrap();
        fs::write(root.join("usr/bin/busybox"), "").unwrap();
        assert_eq!(shell_hint(&[root.to_path_buf()]).as_deref(), Some("sh"));
    }
}
