//! `setup:` steps, each built into a cached layer as `docker build` builds a `RUN` step.
//!
//! A step's layer is named by its parent's key and its text (`image::layer_key`). A missing
//! one is built by starting a labrun container on the image and the layers below, with the
//! layer being built (a fresh directory of the cache) as the overlay's writable layer, and
//! running the step there: `set -e`, the image's shell, stdin from /dev/null, the host's
//! network, Docker's default capabilities, a timeout (`LABRUN_SETUP_TIMEOUT`, default ten
//! minutes). What the step changes outside /lab and /tmp (the run's scratch, as for cells)
//! is the layer. A step that fails or times out is never cached: its output and exit status
//! become the run's error (exit status 3). `--rebuild` builds every step afresh.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::rootfs::{CONTROL_DIR, RootSource};
use super::{StartAs, image_error, lab_workdir, shell_env, start};
use crate::env::{EnvError, EnvSpec};
use crate::exec::procs;
use crate::exec::shell_process::exit_from_wait_status;
use crate::image::layer_key::{image_key, step_key};
use crate::image::{Cache, Image, ImageError, RunConfig};
use crate::outcome::ExitStatus;

/// How long a step may run unless `LABRUN_SETUP_TIMEOUT` says otherwise.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// The most of a failed step's output its error shows (the end of it).
const OUTPUT_SHOWN: usize = 16 * 1024;

/// Where a step's output goes, in the control directory.
const OUTPUT_FILE: &str = "setup-output";

/// `source` with the layers of the spec's setup steps on top, built where missing.
pub fn stack(
    spec: &EnvSpec,
    image: &Image,
    source: RootSource,
    shell: &str,
    cache: &Cache,
) -> Result<RootSource, EnvError> {
    if spec.setup.is_empty() {
        return Ok(source);
    }
    if matches!(source, RootSource::Host { .. }) && !nix::unistd::geteuid().is_root() {
        return Err(EnvError::Other(
            "setup: steps on the host image need labrun run as root (rootless, the host's \
             root cannot be an overlay's lower layer); use an image such as debian:bookworm"
                .into(),
        ));
    }
    let timeout = step_timeout()?;
    let mut parent = image_key(image).map_err(image_error)?;
    let mut layers: Vec<PathBuf> = Vec::new();
    // What `labrun image rm` follows: the layer each was built on (the image's top layer
    // when it is cached), not the key it was named by.
    let layers_dir = cache.root().join("layers");
    let mut built_on: Option<String> = image
        .layers
        .last()
        .filter(|l| l.parent() == Some(layers_dir.as_path()))
        .and_then(|l| Some(l.file_name()?.to_string_lossy().into_owned()));
    let total = spec.setup.len();
    for (i, text) in spec.setup.iter().enumerate() {
        let step = Step {
            number: i + 1,
            total,
            text,
        };
        let key = step_key(&parent, text);
        let below = with_layers(&source, &layers);
        let mut failure: Option<EnvError> = None;
        let build = |dir: &Path| {
            build_step(spec, &image.run_config, below, dir, shell, &step, timeout).map_err(|e| {
                let said = e.to_string();
                failure = Some(e);
                ImageError::io(step.name(), std::io::Error::other(said))
            })
        };
        let built = if spec.rebuild {
            cache.rebuild(&key, build)
        } else {
            cache.get_or_build(&key, build)
        }
        .map_err(|e| failure.take().unwrap_or_else(|| image_error(e)))?;
        cache.describe(&key, built_on.as_deref(), &step.name());
        built_on = Some(key.clone());
        cache.mark_used([key.as_str()]);
        layers.push(built.path);
        parent = key;
    }
    Ok(with_layers(&source, &layers))
}

/// One setup step, for messages.
struct Step<'a> {
    number: usize,
    total: usize,
    text: &'a str,
}

impl Step<'_> {
    fn name(&self) -> String {
        let first = self.text.lines().next().unwrap_or("").trim();
        let more = if self.text.trim().lines().count() > 1 {
            " ..."
        } else {
            ""
        };
        format!(
            "setup step {} of {} ({first}{more})",
            self.number, self.total
        )
    }
}

fn step_timeout() -> Result<Duration, EnvError> {
    match std::env::var("LABRUN_SETUP_TIMEOUT") {
        Ok(text) if !text.is_empty() => crate::units::parse_duration(&text)
            .map_err(|e| EnvError::Other(format!("LABRUN_SETUP_TIMEOUT: {e}"))),
        _ => Ok(DEFAULT_STEP_TIMEOUT),
    }
}

/// `source` with `layers` (lowest first) on top.
fn with_layers(source: &RootSource, layers: &[PathBuf]) -> RootSource {
    match source {
        RootSource::Host { hidden, layers: l } => RootSource::Host {
            hidden: hidden.clone(),
            layers: l.iter().chain(layers).cloned().collect(),
        },
        RootSource::Layers(base) => {
            RootSource::Layers(base.iter().chain(layers).cloned().collect())
        }
    }
}

/// Runs `step` in a container on `below` whose writable layer is `dir`, with the image
/// config's environment, in its `WorkingDir` (else `/`), as Docker runs a `RUN` step.
fn build_step(
    spec: &EnvSpec,
    config: &RunConfig,
    below: RootSource,
    dir: &Path,
    shell: &str,
    step: &Step,
    timeout: Duration,
) -> Result<Vec<String>, EnvError> {
    eprintln!("labrun: building {}", step.name());
    let started_at = Instant::now();
    // The upper directory's mode is the root's.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    fs::create_dir(dir.with_extension("work"))?;
    let started = start(
        spec,
        StartAs {
            source: below,
            upper: Some(dir.to_path_buf()),
            host_network: true,
            privileged: false,
            // Made if missing, so that a step can start there.
            workdir: config
                .workdir
                .clone()
                .unwrap_or_else(|| lab_workdir(spec, config)),
        },
    )?;
    // The shell waits on fd 3 until labrun has found its pid: a step that ends at once would
    // otherwise be gone before then.
    let script = format!(
        "read -r _ <&3 || :\nexec 3<&- </dev/null >{CONTROL_DIR}/{OUTPUT_FILE} 2>&1\nset -e\n{}",
        step.text
    );
    let argv = vec![shell.to_string(), "-c".into(), script];
    let env: Vec<String> = shell_env(spec, config)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let stdin: OwnedFd = File::open("/dev/null")?.into();
    let (go, go_writer) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    let container = started.container.clone();
    let (ns_pid, host_pid) = container.spawn(
        false,
        config.workdir.as_deref().unwrap_or("/"),
        &argv,
        &env,
        stdin,
        go,
    )?;
    let _ = File::from(go_writer).write_all(b"go\n");
    let timed_out = Arc::new(AtomicBool::new(false));
    let (done, watchdog) = watch(host_pid, timeout, timed_out.clone());
    let raw = container.wait_exit(ns_pid);
    drop(done);
    let _ = watchdog.join();
    let output = fs::read(started.control.join(OUTPUT_FILE)).unwrap_or_default();
    drop(started);
    let status = match raw {
        Ok(raw) => exit_from_wait_status(raw),
        Err(e) => return Err(EnvError::Other(format!("{}: {e}", step.name()))),
    };
    let how = if timed_out.load(Ordering::SeqCst) {
        format!(
            "timed out after {} (LABRUN_SETUP_TIMEOUT)",
            crate::units::show_duration(timeout)
        )
    } else {
        match status {
            ExitStatus::Code(0) => {
                eprintln!(
                    "labrun: built {} in {}",
                    step.name(),
                    crate::units::show_duration(started_at.elapsed())
                );
                return Ok(Vec::new());
            }
            ExitStatus::Code(code) => format!("failed with exit status {code}"),
            ExitStatus::Signal(sig) => format!("was killed by signal {sig}"),
        }
    };
    Err(EnvError::Other(format!(
        "{} {how}; not cached. Its output:\n{}",
        step.name(),
        tail(&output)
    )))
}

/// Kills the step's processes when `timeout` passes before the returned sender is dropped.
fn watch(
    pid: u32,
    timeout: Duration,
    timed_out: Arc<AtomicBool>,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (done, wait) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
            timed_out.store(true, Ordering::SeqCst);
            procs::kill_descendants(pid, Duration::from_secs(2));
            procs::signal_all(&[pid], nix::sys::signal::Signal::SIGKILL);
        }
    });
    (done, handle)
}

/// The end of a step's output, as text.
fn tail(output: &[u8]) -> String {
    let start = output.len().saturating_sub(OUTPUT_SHOWN);
    let text = String::from_utf8_lossy(&output[start..]);
    let text = text.trim_end();
    if text.is_empty() {
        "(none)".into()
    } else if start > 0 {
        format!("[... {start} bytes before]\n{text}")
    } else {
        text.to_string()
    }
}
