//! Planning: which cells of a notebook run, in which environment, with which settings.
//!
//! Settings resolve as command line over front matter over defaults. Golden files are found
//! here. Pure: reads golden files, runs nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::EnvSpec;
use crate::notebook::copy_spec::{CopyStep, Place};
use crate::notebook::{BackendKind, Cell, CellKind, Expected, ExpectedSource, Notebook, Settings};

/// Default per-cell timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on the output kept per cell and stream.
pub const DEFAULT_OUTPUT_CAP: u64 = 1 << 20;

/// The run options that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub backend: Option<BackendKind>,
    /// `--kernel`: the vm backend's kernel, over the notebook's `kernel:`.
    pub kernel: Option<PathBuf>,
    pub timeout: Option<Duration>,
    /// `--env NAME=VALUE` (or `--env NAME`, taken from labrun's own environment).
    pub env: BTreeMap<String, String>,
    /// `--var NAME=VALUE` for docable `variables`.
    pub vars: BTreeMap<String, String>,
    pub only: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub fail_fast: bool,
    /// `--keep`: leave the environment up after the run.
    pub keep: bool,
    pub expected_dir: Option<PathBuf>,
    /// `--artifacts DIR`: where `copy` cells may write on this machine.
    pub artifacts: Option<PathBuf>,
    /// `labrun grade`: nothing is copied out of an environment, `--artifacts` or not.
    pub grading: bool,
    /// `--rebuild`: ignore cached setup layers.
    pub rebuild: bool,
}

/// A cell as it will run.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    /// Index into `Notebook::cells`.
    pub index: usize,
    /// The body after `{{variable}}` substitution.
    pub kind: CellKind,
    /// Where its expected output comes from, golden files included.
    pub expected: Option<Expected>,
    /// Where `--update` records this cell's golden file.
    pub golden_path: PathBuf,
    pub timeout: Duration,
    /// Which machine runs it: 0 is `Plan::env`, `i` is `Plan::more_targets[i - 1]`.
    pub target: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub notebook: Notebook,
    /// The environment of the notebook's (first, default) machine.
    pub env: EnvSpec,
    /// The other machines of a several-machine lab (`targets:`), in order; their host names
    /// are their target names.
    pub more_targets: Vec<EnvSpec>,
    pub total_timeout: Option<Duration>,
    pub output_cap: u64,
    pub fail_fast: bool,
    pub keep: bool,
    /// Where `copy` cells may write on this machine (`--artifacts`).
    pub artifacts: Option<PathBuf>,
    /// The selected cells, in document order.
    pub cells: Vec<PlannedCell>,
}

/// A planning error: a usage error that names the notebook and, where it can, the line.
#[derive(Debug)]
pub struct PlanError {
    pub path: PathBuf,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    pub fn cell(&self, planned: &PlannedCell) -> &Cell {
        &self.notebook.cells[planned.index]
    }

    /// Every machine's environment, the default first (index = `PlannedCell::target`).
    pub fn targets(&self) -> impl Iterator<Item = &EnvSpec> {
        std::iter::once(&self.env).chain(&self.more_targets)
    }

    /// The machine a cell runs on.
    pub fn target_of(&self, planned: &PlannedCell) -> &EnvSpec {
        self.targets().nth(planned.target).unwrap_or(&self.env)
    }
}

/// Where golden files of this notebook live: `(<root>, <expected-output base>)`.
fn golden_base(notebook_path: &Path, expected_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let abs = notebook_path
        .canonicalize()
        .unwrap_or_else(|_| notebook_path.to_path_buf());
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = dir
        .ancestors()
        .find(|d| d.join("expected-output").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.clone());
    let base = expected_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("expected-output"));
    let rel = abs.strip_prefix(&root).unwrap_or(&abs).with_extension("");
    (root, base.join(rel))
}

fn err(nb: &Notebook, line: u32, message: impl Into<String>) -> PlanError {
    PlanError {
        path: nb.path.clone(),
        line,
        message: message.into(),
    }
}

/// Substitutes `{{name}}` for each declared variable; a missing one is an error.
fn substitute(
    text: &str,
    names: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = text.to_string();
    for name in names {
        let value = vars.get(name).ok_or_else(|| {
            format!("variable '{name}' is not set (pass it with --var {name}=VALUE)")
        })?;
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    Ok(out)
}

fn substitute_kind(
    kind: &CellKind,
    names: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<CellKind, String> {
    if names.is_empty() {
        return Ok(kind.clone());
    }
    Ok(match kind {
        CellKind::Command { script } => CellKind::Command {
            script: substitute(script, names, vars)?,
        },
        CellKind::File { content } => CellKind::File {
            content: substitute(content, names, vars)?,
        },
        CellKind::Script {
            interpreter,
            program,
        } => CellKind::Script {
            interpreter: interpreter.clone(),
            program: substitute(program, names, vars)?,
        },
        CellKind::Transcript { steps, stdout_only } => {
            let mut steps = steps.clone();
            for s in &mut steps {
                s.command = substitute(&s.command, names, vars)?;
            }
            CellKind::Transcript {
                steps,
                stdout_only: *stdout_only,
            }
        }
        CellKind::Interactive {
            command,
            banner,
            steps,
        } => {
            let mut steps = steps.clone();
            for s in &mut steps {
                s.command = substitute(&s.command, names, vars)?;
            }
            CellKind::Interactive {
                command: substitute(command, names, vars)?,
                banner: banner.clone(),
                steps,
            }
        }
        CellKind::Edit { diff } => CellKind::Edit {
            diff: substitute(diff, names, vars)?,
        },
        other => other.clone(),
    })
}

/// A copy cell's machines must exist, and copying out needs `--artifacts`.
fn check_copy(
    steps: &[CopyStep],
    targets: &[&str],
    opts: &RunOptions,
) -> Result<(), (u32, String)> {
    for step in steps {
        for place in [&step.from, &step.to] {
            match place {
                Place::Machine {
                    target: Some(name), ..
                } if !targets.contains(&name.as_str()) => {
                    return Err((step.line, unknown_target(name, targets)));
                }
                Place::Artifacts(_) if opts.grading => {
                    return Err((
                        step.line,
                        "copying out of the environment is refused when grading".into(),
                    ));
                }
                Place::Artifacts(_) if opts.artifacts.is_none() => {
                    return Err((
                        step.line,
                        "copying out of the environment needs --artifacts DIR".into(),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn unknown_target(name: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!(
            "target '{name}': the notebook names no targets (add labrun.targets to its front matter)"
        )
    } else {
        format!(
            "unknown target '{name}' (the notebook's targets: {})",
            known.join(", ")
        )
    }
}

/// A target's settings over the notebook's: what the target sets wins; `env` and `limits`
/// are merged key by key.
fn merged(notebook: &Settings, target: &Settings) -> Settings {
    let mut out = notebook.clone();
    out.targets = Vec::new();
    out.backend = target.backend.or(notebook.backend);
    out.image = target.image.clone().or(out.image);
    out.shell = target.shell.clone().or(out.shell);
    out.workdir = target.workdir.clone().or(out.workdir);
    out.network = target.network.clone().or(out.network);
    out.kernel = target.kernel.clone().or(out.kernel);
    if !target.setup.is_empty() {
        out.setup = target.setup.clone();
    }
    out.env.extend(target.env.clone());
    out.limits.extend(target.limits.clone());
    out
}

/// What one machine's environment takes from the plan besides its settings.
struct MachineSpec {
    hostname: String,
    notebook_dir: PathBuf,
    privileged: bool,
    hidden: Vec<PathBuf>,
}

impl MachineSpec {
    fn env_spec(self, settings: &Settings, opts: &RunOptions) -> Result<EnvSpec, String> {
        let backend = opts
            .backend
            .or(settings.backend)
            .unwrap_or(BackendKind::Container);
        if backend == BackendKind::Host && !settings.setup.is_empty() {
            return Err("backend host refuses setup: steps (they would change this machine); use the container backend".into());
        }
        let mut env = settings.env.clone();
        env.extend(opts.env.clone());
        if let Some(name) = env.keys().find(|name| !valid_env_name(name)) {
            return Err(format!("'{name}' is not a valid environment variable name"));
        }
        let kernel = opts
            .kernel
            .clone()
            .or_else(|| settings.kernel.as_ref().map(|k| self.notebook_dir.join(k)));
        Ok(EnvSpec {
            backend,
            env,
            notebook_dir: self.notebook_dir,
            shell: settings.shell.clone(),
            hostname: self.hostname,
            image: settings.image.clone(),
            workdir: settings.workdir.clone(),
            host_network: settings.network.as_deref() == Some("host"),
            limits: settings.limits.clone(),
            setup: settings.setup.clone(),
            privileged: self.privileged,
            hidden: self.hidden,
            network: None,
            submission: None,
            rebuild: opts.rebuild,
            kernel,
        })
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Builds the plan for one parsed notebook.
pub fn plan(notebook: Notebook, opts: &RunOptions) -> Result<Plan, PlanError> {
    let settings = &notebook.settings;
    let target_names: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
    let output_cap = match settings.limits.get("output") {
        Some(text) => {
            crate::units::parse_size(text).map_err(|e| err(&notebook, settings.line, e))?
        }
        None => DEFAULT_OUTPUT_CAP,
    };
    let default_timeout = opts.timeout.or(settings.timeout).unwrap_or(DEFAULT_TIMEOUT);

    for id in opts.only.iter().chain(&opts.from).chain(&opts.to) {
        if !notebook.cells.iter().any(|c| &c.id.0 == id) {
            return Err(err(&notebook, 0, format!("no cell has the id '{id}'")));
        }
    }
    let (golden_root, golden_dir) = golden_base(&notebook.path, opts.expected_dir.as_deref());
    // The whole expected-output tree stays hidden from the lab, not just this notebook's.
    let golden_dir_root = opts
        .expected_dir
        .clone()
        .unwrap_or_else(|| golden_root.join("expected-output"));
    let mut in_range = opts.from.is_none();
    let mut cells = Vec::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        if opts.from.as_deref() == Some(cell.id.0.as_str()) {
            in_range = true;
        }
        let selected = in_range && (opts.only.is_empty() || opts.only.contains(&cell.id.0));
        if opts.to.as_deref() == Some(cell.id.0.as_str()) {
            in_range = false;
        }
        if !selected {
            continue;
        }
        for name in cell.attrs.env.keys() {
            if !valid_env_name(name) {
                return Err(err(
                    &notebook,
                    cell.line,
                    format!("'{name}' is not a valid environment variable name"),
                ));
            }
        }
        let kind = substitute_kind(&cell.kind, &cell.attrs.variables, &opts.vars)
            .map_err(|m| err(&notebook, cell.line, m))?;
        let target = match &cell.attrs.target {
            None => 0,
            Some(name) => target_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| err(&notebook, cell.line, unknown_target(name, &target_names)))?,
        };
        if let CellKind::Copy { steps } = &cell.kind {
            check_copy(steps, &target_names, opts).map_err(|(line, m)| err(&notebook, line, m))?;
        }
        let golden_path = golden_dir.join(format!("{}.out", cell.id));
        let expected = match &cell.expected {
            Some(e) => Some(e.clone()),
            None if matches!(kind, CellKind::Command { .. } | CellKind::Script { .. }) => {
                match fs::read(&golden_path) {
                    Ok(bytes) => Some(Expected {
                        source: ExpectedSource::Golden(golden_path.clone()),
                        attribute_value: None,
                        text: String::from_utf8(bytes)
                            .map_err(|_| {
                                err(
                                    &notebook,
                                    cell.line,
                                    format!(
                                        "golden file {} is not UTF-8 (use (esc) lines for raw bytes)",
                                        golden_path.display()
                                    ),
                                )
                            })?
                            .trim_end_matches('\n')
                            .to_string(),
                    }),
                    Err(_) => None,
                }
            }
            None => None,
        };
        if let Some(e) = &expected
            && let Err(pe) = crate::expect::parse_expected(&e.text)
        {
            return Err(err(&notebook, cell.line, format!("expected output: {pe}")));
        }
        cells.push(PlannedCell {
            index,
            kind,
            expected,
            golden_path,
            timeout: cell.attrs.timeout.unwrap_or(default_timeout),
            target,
        });
    }
    let notebook_dir = notebook
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let stem = notebook
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lab".into());
    let machines: Vec<(String, Settings)> = if settings.targets.is_empty() {
        vec![(stem, settings.clone())]
    } else {
        settings
            .targets
            .iter()
            .map(|t| (t.name.clone(), merged(settings, &t.settings)))
            .collect()
    };
    let mut specs = Vec::with_capacity(machines.len());
    for (i, (hostname, own)) in machines.into_iter().enumerate() {
        let machine = MachineSpec {
            hostname,
            notebook_dir: notebook_dir.clone(),
            privileged: cells
                .iter()
                .any(|c| c.target == i && notebook.cells[c.index].attrs.privileged),
            hidden: vec![notebook_dir.clone(), golden_dir_root.clone()],
        };
        specs.push(
            machine
                .env_spec(&own, opts)
                .map_err(|m| err(&notebook, settings.line, m))?,
        );
    }
    let env = specs.remove(0);
    Ok(Plan {
        env,
        more_targets: specs,
        total_timeout: settings.total_timeout,
        output_cap,
        fail_fast: opts.fail_fast,
        keep: opts.keep,
        artifacts: opts.artifacts.clone(),
        cells,
        notebook,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables() {
        let vars: BTreeMap<String, String> = [("name".to_string(), "Ada".to_string())].into();
        let names = vec!["name".to_string()];
        assert_eq!(substitute("hi {{name}}", &names, &vars).unwrap(), "hi Ada");
        let missing = vec!["other".to_string()];
        assert!(
            substitute("x", &missing, &vars)
                .unwrap_err()
                .contains("--var other=")
        );
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("A_1"));
        assert!(!valid_env_name("1A"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }

    #[test]
    fn golden_paths_follow_the_nearest_expected_output() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("expected-output")).unwrap();
        fs::create_dir_all(root.join("docs/part")).unwrap();
        let nb = root.join("docs/part/intro.md");
        fs::write(&nb, "x").unwrap();
        let (r, base) = golden_base(&nb, None);
        assert_eq!(r, root.canonicalize().unwrap());
        assert_eq!(base, r.join("expected-output/docs/part/intro"));
        let (_, over) = golden_base(&nb, Some(Path::new("/elsewhere")));
        assert_eq!(over, Path::new("/elsewhere/docs/part/intro"));
    }
}
