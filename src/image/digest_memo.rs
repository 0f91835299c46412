//! The SHA-256 of a file, remembered by the file's identity so it is read once, not on every
//! run: the busybox binary and rootfs tarballs are keyed by their bytes, and hashing megabytes
//! each time would cost a run more than the rest of its image resolution.
//!
//! `<root>/digests/<id>` holds the digest of the file whose identity hashes to `<id>`: its
//! path, device, inode, size, and modification and change times to the nanosecond. Writing a
//! file changes its change time, which no user can set back, so a file with the same identity
//! has the same bytes. (A tarball's bytes are hashed again as they are unpacked anyway.)

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Cache;
use super::digest::{recipe_key, sha256_file};

impl Cache {
    /// The SHA-256 of `path`'s bytes, in hex, from the memo when the file is unchanged.
    pub fn file_digest(&self, path: &Path) -> io::Result<String> {
        let m = fs::metadata(path)?;
        let identity = format!(
            "{} {} {} {} {}.{} {}.{}",
            path.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        );
        let memo = self
            .root()
            .join("digests")
            .join(recipe_key(&["labrun file identity", &identity]));
        if let Ok(known) = fs::read_to_string(&memo)
            && known.len() == 64
            && known.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(known);
        }
        let digest = sha256_file(path)?;
        let _ = remember(&memo, &digest);
        Ok(digest)
    }
}

fn remember(memo: &Path, digest: &str) -> io::Result<()> {
    if let Some(dir) = memo.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = memo.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, digest)?;
    fs::rename(&tmp, memo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "one").unwrap();
        let first = cache.file_digest(&file).unwrap();
        assert_eq!(first, sha256_file(&file).unwrap());
        assert_eq!(cache.file_digest(&file).unwrap(), first);
        fs::write(&file, "two").unwrap();
        assert_eq!(
            cache.file_digest(&file).unwrap(),
            sha256_file(&file).unwrap()
        );
    }
}
