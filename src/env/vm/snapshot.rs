//! Warm starts. The first boot of a machine of one shape (qemu, kernel, initramfs, memory,
//! shares, accelerator, kernel command line) is saved the moment its agent says `Booted`: the
//! guest stopped, its state streamed by qemu into a file of labrun's cache, and let go on.
//! Later runs of that shape start qemu with `-incoming` from the file and skip the kernel's
//! boot altogether; the agent, restored waiting for `Hello`, then takes this machine's clock
//! and fresh randomness (see `guest::wake`). Nothing of a lab is in a snapshot: the agent
//! mounts the shares only after `Hello`. `LABRUN_VM_SNAPSHOT=0` turns warm starts off.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::qmp::Qmp;

/// How long saving or restoring a guest may take.
const MIGRATION_LIMIT: Duration = Duration::from_secs(60);

/// Whether warm starts are on (`LABRUN_VM_SNAPSHOT=0` turns them off).
pub fn enabled() -> bool {
    std::env::var("LABRUN_VM_SNAPSHOT").as_deref() != Ok("0")
}

/// A file's identity, cheaper than its digest.
pub fn stamp(path: &Path) -> String {
    fs::metadata(path).map_or(String::new(), |m| {
        format!("{}:{}:{}:{}", path.display(), m.len(), m.mtime(), m.ino())
    })
}

/// Where the snapshot of a machine of this shape is kept.
pub fn path_for(cache_dir: &Path, shape: &[&str]) -> PathBuf {
    let key = crate::image::digest::recipe_key(shape);
    cache_dir.join(format!("snapshot-{}.bin", &key[..16]))
}

/// Saves the stopped guest's state into `path` (written aside, then renamed into place, so a
/// concurrent run never reads half a file), and lets the guest go on.
pub fn save(qmp: &mut Qmp, path: &Path) -> io::Result<()> {
    qmp.execute("stop", json!({}))?;
    let partial = path.with_extension(format!("part-{}", std::process::id()));
    let saved = (|| {
        let file = File::create(&partial)?;
        qmp.give_fd("snapshot", file.as_fd())?;
        qmp.execute("migrate", json!({ "uri": "fd:snapshot" }))?;
        qmp.await_migration(MIGRATION_LIMIT)?;
        fs::rename(&partial, path)
    })();
    if saved.is_err() {
        let _ = fs::remove_file(&partial);
    }
    // The guest runs on whatever became of the file.
    qmp.execute("cont", json!({}))?;
    saved
}

/// Waits for a guest started with `-incoming` to be restored, and lets it run.
pub fn resume(qmp: &mut Qmp) -> io::Result<()> {
    qmp.await_migration(MIGRATION_LIMIT)?;
    qmp.execute("cont", json!({}))?;
    Ok(())
}
