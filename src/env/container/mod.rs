//! The `container` backend: labrun's own runtime on Linux namespaces, the default.
//!
//! One run gets one fresh container: an overlay of its image under a writable layer that
//! exists only for the run, new mount, PID, UTS, IPC, network and cgroup namespaces, a user
//! namespace (rootless, or for the session when labrun is root), `pivot_root`, fresh /proc and
//! /dev, a small init as PID 1, and shells hardened before they execute. See the book's
//! design/container page for the why of each step.
//!
//! - `rootfs` plans the mounts, `ops` are the steps (`beneath` keeps them inside the image),
//!   `child` and `init` run in the container;
//! - `runtime` is labrun's side of it, `shell` starts the session's shells through init;
//! - `userns` writes id maps, `hardening` is what a shell gives up, `wire` the messages;
//! - `setup` builds the notebook's `setup:` steps into cached layers, each in a container of
//!   its own started the same way.

pub mod beneath;
pub mod child;
pub mod hardening;
pub mod init;
pub mod ops;
pub mod rootfs;
pub mod runtime;
pub mod setup;
pub mod shell;
pub mod userns;
pub mod wire;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::limit_watch::LimitWatch;
use super::rundir::RunDir;
use super::{EnvError, EnvSpec, Environment, default_env};
use crate::exec::session::ShellLaunch;
use crate::image::inroot::lookup;
use crate::image::maintenance::CacheHold;
use crate::image::{self, Cache, ImageError, ImageKind, ImageRef};
use crate::limits::{Limits, RlimitPlan, RunCgroup};
use child::ChildPlan;
use hardening::Hardening;
use rootfs::{CONTROL_DIR, RootSource, RootSpec};
use runtime::Container;
use shell::ContainerStarter;
use userns::IdMaps;

/// What must live as long as the run. Dropping it kills the container's init at once and
/// empties the run's directory while the kernel takes the container apart (its mounts and
/// namespaces: about a millisecond here, on the other CPU); then, as the fields drop in this
/// order, it waits for init, removes the cgroups, and removes the directory with its lock last,
/// so that a labrun killed at any point leaves a stale run the next one sweeps.
struct Guard {
    container: Arc<Container>,
    /// Held only to be dropped (removed) after the container.
    _cgroup: Option<Arc<RunCgroup>>,
    run: RunDir,
    /// Keeps `labrun image rm` and `prune` from removing the layers under the run.
    hold: Option<CacheHold>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.container.kill();
        self.run.clear();
    }
}

impl super::EnvGuard for Guard {
    fn keep(mut self: Box<Self>) -> Result<String, EnvError> {
        let pid = self.container.init_pid();
        // If this fails, the guard drops as usual and takes everything down.
        self.container.detach(self.run.lock_fd())?;
        crate::exec::procs::spare(pid);
        // Nothing of it is torn down: its init holds the run's lock from now on, so a later
        // labrun sweeps it only once it is gone.
        self.hold.take();
        std::mem::forget(self);
        let who = if nix::unistd::geteuid().is_root() {
            "sudo "
        } else {
            ""
        };
        Ok(format!(
            "the environment is kept: enter it with `{who}nsenter --target {pid} --all` (then \
             `cd /lab`); remove it with `{who}kill -9 {pid}` (a later labrun sweeps what is left)"
        ))
    }
}

/// The shell's path inside the image: `name` if it is a path, else found on the default PATH.
fn find_shell(layers: &[PathBuf], name: &str) -> Option<String> {
    let path = default_env()["PATH"].clone();
    let candidates: Vec<String> = if name.starts_with('/') {
        vec![name.to_string()]
    } else {
        path.split(':').map(|d| format!("{d}/{name}")).collect()
    };
    candidates.into_iter().find(|inside| {
        layers
            .iter()
            .rev()
            .any(|layer| lookup(layer, Path::new(inside)).is_some_and(|p| p.is_file()))
    })
}

pub(crate) fn image_error(e: ImageError) -> EnvError {
    EnvError::Other(e.to_string())
}

/// The image's layers, what the root is built from, and the shell's path inside.
struct Resolved {
    image: image::Image,
    source: RootSource,
    shell: String,
    /// The cache, held, for images that use it (setup steps build into it).
    cache: Option<(Cache, CacheHold)>,
}

fn resolve(spec: &EnvSpec) -> Result<Resolved, EnvError> {
    let image_text = spec.image.as_deref().unwrap_or("host");
    let image_ref = ImageRef::parse(image_text, &spec.notebook_dir).map_err(image_error)?;
    let cache = match image_ref {
        ImageRef::Host => Cache::locate(),
        _ => Cache::open(),
    };
    // The host image hides the cache itself, wherever it is.
    let cache_root = cache.as_ref().ok().map(|c| c.root().to_path_buf());
    let image = match (&image_ref, &cache) {
        (ImageRef::Host, _) => image::Image {
            layers: vec![PathBuf::from("/")],
            kind: ImageKind::Host,
            shell_hint: Some("bash".into()),
            notes: Vec::new(),
            run_config: image::RunConfig::default(),
        },
        (_, Ok(cache)) => image::resolve(&image_ref, cache).map_err(image_error)?,
        (_, Err(e)) => return Err(EnvError::Other(e.to_string())),
    };
    let cache = match (image.kind, cache) {
        (ImageKind::Host, _) if spec.setup.is_empty() => None,
        (ImageKind::Host, _) => Some(Cache::open().map_err(image_error)?),
        (_, cache) => cache.ok(),
    };
    let cache = match cache {
        Some(cache) => {
            let hold = cache.hold().map_err(image_error)?;
            cache.describe_image(&image.layers, &image_ref.display());
            Some((cache, hold))
        }
        None => None,
    };
    let source = match image.kind {
        ImageKind::Host => {
            let mut hidden = spec.hidden.clone();
            hidden.extend(cache_root);
            RootSource::Host {
                hidden: image::host_hidden_paths_of(&hidden),
                layers: Vec::new(),
            }
        }
        ImageKind::Unpacked => RootSource::Layers(image.layers.clone()),
    };
    let wanted = spec
        .shell
        .clone()
        .or(image.shell_hint.clone())
        .unwrap_or_else(|| "sh".into());
    let shell = find_shell(&image.layers, &wanted).ok_or_else(|| {
        EnvError::Other(format!(
            "the shell '{wanted}' is not in the image '{}'",
            image_ref.display()
        ))
    })?;
    Ok(Resolved {
        image,
        source,
        shell,
        cache,
    })
}

/// The maps of a rootless container's user namespace: the caller as root, and its
/// subordinate ids where the system gives it some.
fn caller_maps() -> IdMaps {
    let uid = nix::unistd::getuid();
    let user = super::caller_name().unwrap_or_default();
    IdMaps::rootless(uid.as_raw(), nix::unistd::getgid().as_raw(), &user)
}

/// How to start a container beyond what the notebook's spec says.
struct StartAs {
    source: RootSource,
    /// A writable layer that outlives the container (a setup step's), else a fresh one.
    upper: Option<PathBuf>,
    host_network: bool,
    privileged: bool,
    /// The lab's working directory (`lab_workdir`), made in the root if it is missing.
    workdir: String,
}

/// A started container and what must live as long as it does.
struct Started {
    container: Arc<Container>,
    cgroup: Option<Arc<RunCgroup>>,
    run: RunDir,
    control: PathBuf,
    workdir: String,
    limits: Limits,
    session_userns: bool,
    rootless: bool,
    /// Limits not enforced as asked.
    warnings: Vec<String>,
}

fn start(spec: &EnvSpec, how: StartAs) -> Result<Started, EnvError> {
    let rootless = !nix::unistd::geteuid().is_root();
    // As root, the container's processes live in a user namespace of the run's own only when
    // the notebook has privileged cells: that is what bounds their capabilities. Ordinary cells
    // hold Docker's default set either way, and the namespace costs a round trip and a second
    // copy of the mount table.
    let session_userns = !rootless && how.privileged;
    // A setup step's container (its upper layer outlives it) sees neither the lab's network
    // nor a submission: only what the layer is keyed by may shape it.
    let for_lab = how.upper.is_none();
    let lab_network = spec.network.as_ref().filter(|_| for_lab);
    let limits = Limits::from_map(&spec.limits)
        .map_err(EnvError::Other)?
        .with_defaults();
    crate::trace::mark("image resolved");
    let run = RunDir::create()?;
    let (cgroup, unenforced) = RunCgroup::create(run.token(), &limits);
    let (rlimits, unenforced) = RlimitPlan::fallback(&limits, unenforced, false);
    let warnings: Vec<String> = unenforced
        .iter()
        .map(|u| format!("limit not enforced as asked: {u}"))
        .collect();
    if let Some(cgroup) = &cgroup {
        run.record_cgroups(&cgroup.paths())?;
    }
    let cgroup = cgroup.map(Arc::new);
    crate::trace::mark("cgroups created");
    let control = run.subdir("ctl", 0o700)?;
    let staging = run.subdir("root", 0o700)?;
    let workdir = how.workdir;
    let root = RootSpec {
        source: how.source,
        staging,
        upper: how.upper,
        control_dir: control.clone(),
        notebook_dir: spec.notebook_dir.clone(),
        notebook_masks: spec
            .hidden
            .iter()
            .filter_map(|h| {
                let rel = h.strip_prefix(&spec.notebook_dir).ok()?;
                (!rel.as_os_str().is_empty() && h.exists()).then(|| rel.to_path_buf())
            })
            .collect(),
        submission_dir: spec.submission.clone().filter(|_| for_lab),
        workdir: workdir.clone(),
        hostname: spec.hostname.clone(),
        lab_network: match lab_network {
            Some(attach) => {
                let hosts = run.path().join("hosts");
                std::fs::write(&hosts, &attach.hosts)?;
                Some((attach.address, hosts))
            }
            None => None,
        },
        disk: limits.disk.unwrap_or(crate::limits::DEFAULT_DISK),
        rootless,
        host_network: how.host_network,
        mknod_devices: session_userns,
        detach_old_root_later: !session_userns,
    };
    let mut unshare = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if lab_network.is_none() && !how.host_network {
        unshare |= libc::CLONE_NEWNET;
    }
    let plan = ChildPlan {
        sync: -1,
        control: -1,
        unshare,
        join_netns: lab_network.map_or(-1, |n| n.netns.as_raw_fd()),
        ops: root.ops(),
        session_userns,
        detach_old_root: !session_userns,
        argv_area: None,
        hardening: Hardening::new(rlimits),
        merged: root.staging.join("merged").to_string_lossy().into_owned(),
        image_paths: root.image_paths(),
        cgroup_procs: cgroup
            .iter()
            .flat_map(|c| c.v1_join_files())
            .map(ops::cstring)
            .collect(),
    };
    crate::trace::mark("root planned");
    let maps = rootless.then(caller_maps);
    let container = Arc::new(Container::start(
        plan,
        maps,
        cgroup.as_ref().and_then(|c| c.v2_dir()),
    )?);
    Ok(Started {
        container,
        cgroup,
        run,
        control,
        workdir,
        limits,
        session_userns,
        rootless,
        warnings,
    })
}

/// The environment every shell of the container starts with: labrun's defaults, then the
/// image's config, then labrun's own variables, then the notebook's `env:`.
pub(crate) fn shell_env(
    spec: &EnvSpec,
    config: &image::RunConfig,
) -> std::collections::BTreeMap<String, String> {
    let mut env = default_env();
    env.extend(config.env.iter().cloned());
    env.insert("LABRUN_NOTEBOOK_DIR".into(), "/lab/.notebook".into());
    env.insert("HOSTNAME".into(), spec.hostname.clone());
    if spec.submission.is_some() {
        env.insert("LABRUN_SUBMISSION_DIR".into(), "/lab/.submission".into());
    }
    env.extend(spec.env.clone());
    env
}

/// The root a lab's machine is built from, with the setup steps' layers on top: what it
/// reads, the shell's path inside, what is worth saying about the image, and the hold that
/// keeps its layers in the cache. The vm backend builds its root from the same.
pub(crate) struct LabRoot {
    pub source: RootSource,
    pub shell: String,
    pub notes: Vec<String>,
    pub hold: Option<CacheHold>,
    /// What the image's config says its processes start with.
    pub run_config: image::RunConfig,
}

/// The lab's working directory: the notebook's `workdir:`, else the image config's
/// `WorkingDir`, else `/lab`.
pub(crate) fn lab_workdir(spec: &EnvSpec, config: &image::RunConfig) -> String {
    spec.workdir
        .clone()
        .or_else(|| config.workdir.clone())
        .unwrap_or_else(|| "/lab".into())
}

pub(crate) fn lab_root(spec: &EnvSpec) -> Result<LabRoot, EnvError> {
    let Resolved {
        image,
        source,
        shell,
        cache,
    } = resolve(spec)?;
    let (source, hold) = match cache {
        Some((cache, hold)) => (
            setup::stack(spec, &image, source, &shell, &cache)?,
            Some(hold),
        ),
        None => (source, None),
    };
    let mut notes = image.notes;
    if let Some(user) = &image.run_config.user {
        notes.push(format!(
            "the image's config runs its processes as user '{user}'; labrun runs the cells as \
             root, and a cell runs as another user with `user:`"
        ));
    }
    Ok(LabRoot {
        source,
        shell,
        notes,
        hold,
        run_config: image.run_config,
    })
}

pub fn build(spec: &EnvSpec) -> Result<Environment, EnvError> {
    let LabRoot {
        source,
        shell,
        notes,
        hold,
        run_config,
    } = lab_root(spec)?;
    let started = start(
        spec,
        StartAs {
            source,
            upper: None,
            host_network: spec.host_network,
            privileged: spec.privileged,
            workdir: lab_workdir(spec, &run_config),
        },
    )?;
    let (container, cgroup, workdir) = (
        started.container.clone(),
        started.cgroup.clone(),
        started.workdir.clone(),
    );
    let watch = LimitWatch {
        cgroup: cgroup.clone(),
        limits: started.limits,
        disk_free: Some({
            let container = container.clone();
            Box::new(move || container.disk_free())
        }),
    };
    let mut warnings = started.warnings;
    warnings.extend(notes);
    let launch = ShellLaunch {
        program: PathBuf::from(&shell),
        args: super::shell_args(&shell),
        env: shell_env(spec, &run_config),
        cwd: PathBuf::from(&workdir),
        control_dir: started.control,
        control_dir_inside: CONTROL_DIR.into(),
        workdir_inside: workdir,
        starter: Arc::new(ContainerStarter {
            container: container.clone(),
            privileged: false,
        }),
    };
    // Without a user namespace of its own (labrun as root, no privileged cell planned), a
    // privileged shell would hold the machine's capabilities: there is none to start.
    let privileged_launch = (started.rootless || started.session_userns).then(|| {
        let mut privileged = launch.clone();
        privileged.starter = Arc::new(ContainerStarter {
            container: container.clone(),
            privileged: true,
        });
        privileged
    });
    Ok(Environment {
        launch,
        privileged_launch,
        warnings,
        watch: Some(watch),
        workdir_host: PathBuf::new(),
        guard: Box::new(Guard {
            container,
            _cgroup: cgroup,
            run: started.run,
            hold,
        }),
    })
}
