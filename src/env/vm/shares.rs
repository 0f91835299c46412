//! What a guest gets over 9p: the image's layers (or, for the `host` image, this machine's
//! top-level directories), the notebook's directory, the submission, the stage and the
//! kernel's modules, each a share with a tag; and the paths qemu's views must cover in them.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::super::container::rootfs::RootSource;
use super::super::{EnvError, EnvSpec};
use super::STAGE_DIR;
use super::qemu;
use super::wire::Share;

/// The shares and what the guest makes of them.
pub struct Shares {
    pub devices: Vec<qemu::ShareDevice>,
    pub hello_layers: Vec<Share>,
    pub hello_host_dirs: Vec<Share>,
    pub host_links: Vec<(String, String)>,
    /// This machine's top-level directories that are hidden as a whole: empty in the guest.
    pub host_empty: Vec<String>,
    pub mounts: Vec<Share>,
    pub hidden: Vec<(PathBuf, bool)>,
}

impl Shares {
    fn add(&mut self, tag: String, dir: &Path, target: &str) -> Result<Share, EnvError> {
        let fd = File::open(dir)
            .map_err(|e| EnvError::Other(format!("{}: {e}", dir.display())))?
            .into();
        self.devices.push(qemu::ShareDevice {
            tag: tag.clone(),
            source: dir.to_path_buf(),
            dir: fd,
        });
        Ok(Share {
            tag,
            target: target.to_string(),
        })
    }
}

/// The host's own top-level directories a `host` root shares (the pseudo filesystems are
/// the guest's own), and its top-level symbolic links.
fn host_tops() -> (Vec<String>, Vec<(String, String)>) {
    const OWN: [&str; 4] = ["proc", "sys", "dev", "lost+found"];
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    for e in std::fs::read_dir("/").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_symlink() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                links.push((format!("/{name}"), target.to_string_lossy().into_owned()));
            }
        } else if kind.is_dir() && !OWN.contains(&name.as_str()) {
            dirs.push(format!("/{name}"));
        }
    }
    dirs.sort();
    (dirs, links)
}

pub fn shares_for(
    spec: &EnvSpec,
    source: &RootSource,
    stage: &Path,
    modules: Option<&Path>,
) -> Result<Shares, EnvError> {
    let mut s = Shares {
        devices: Vec::new(),
        hello_layers: Vec::new(),
        hello_host_dirs: Vec::new(),
        host_links: Vec::new(),
        host_empty: Vec::new(),
        mounts: Vec::new(),
        hidden: spec
            .hidden
            .iter()
            .map(|h| (h.clone(), h.is_dir()))
            .collect(),
    };
    let layers = match source {
        RootSource::Layers(layers) => layers.clone(),
        RootSource::Host { hidden, layers } => {
            // The host's list leaves out what lies inside a hidden directory (the expected
            // output inside the notebook's); the notebook's own share needs those too.
            s.hidden
                .extend(hidden.iter().map(|h| (h.path.clone(), h.is_dir)));
            let (mut dirs, links) = host_tops();
            // A directory hidden as a whole is not shared at all: the guest makes it empty.
            dirs.retain(|d| {
                let whole = hidden.iter().any(|h| h.is_dir && h.path == Path::new(d));
                if whole {
                    s.host_empty.push(d.clone());
                }
                !whole
            });
            for (i, d) in dirs.iter().enumerate() {
                let share = s.add(format!("h{i}"), Path::new(d), d)?;
                s.hello_host_dirs.push(share);
            }
            s.host_links = links;
            layers.clone()
        }
    };
    for (i, layer) in layers.iter().enumerate() {
        let share = s.add(format!("l{i}"), layer, "/")?;
        s.hello_layers.push(share);
    }
    let notebook = s.add("notebook".into(), &spec.notebook_dir, "/lab/.notebook")?;
    s.mounts.push(notebook);
    if let Some(sub) = &spec.submission {
        let share = s.add("submission".into(), sub, "/lab/.submission")?;
        s.mounts.push(share);
    }
    let share = s.add("stage".into(), stage, STAGE_DIR)?;
    s.mounts.push(share);
    // The kernel's own modules where its tools look for them, so a lab can load one.
    if let Some(dir) = modules
        && let Some(version) = dir.file_name()
    {
        let target = format!("/lib/modules/{}", version.to_string_lossy());
        let share = s.add("modules".into(), dir, &target)?;
        s.mounts.push(share);
    }
    s.hidden.retain(|(p, _)| p.exists());
    Ok(s)
}
