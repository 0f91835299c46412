//! Planning: which cells of a notebook run, in which environment, with which settings.
//!
//! Settings resolve as command line over front matter over defaults. Golden files are found
//! here. Pure: reads golden files, runs nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::EnvSpec;
use crate::notebook::{BackendKind, Cell, CellKind, Expected, ExpectedSource, Notebook};

/// Default per-cell timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on the output kept per cell and stream.
pub const DEFAULT_OUTPUT_CAP: u64 = 1 << 20;

/// The run options that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub backend: Option<BackendKind>,
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
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub notebook: Notebook,
    pub env: EnvSpec,
    pub total_timeout: Option<Duration>,
    pub output_cap: u64,
    pub fail_fast: bool,
    pub keep: bool,
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
        other => other.clone(),
    })
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Builds the plan for one parsed notebook.
pub fn plan(notebook: Notebook, opts: &RunOptions) -> Result<Plan, PlanError> {
    let settings = &notebook.settings;
    let backend = opts
        .backend
        .or(settings.backend)
        .unwrap_or(BackendKind::Container);
    if backend == BackendKind::Host && !settings.setup.is_empty() {
        return Err(err(
            &notebook,
            settings.line,
            "backend host refuses setup: steps (they would change this machine); use the container backend",
        ));
    }
    let mut env = settings.env.clone();
    env.extend(opts.env.clone());
    for name in env.keys() {
        if !valid_env_name(name) {
            return Err(err(
                &notebook,
                settings.line,
                format!("'{name}' is not a valid environment variable name"),
            ));
        }
    }
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
        });
    }
    let notebook_dir = notebook
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let hostname = notebook
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lab".into());
    let shell = settings.shell.clone();
    Ok(Plan {
        env: EnvSpec {
            backend,
            env,
            notebook_dir: notebook_dir.clone(),
            shell,
            hostname,
            image: settings.image.clone(),
            workdir: settings.workdir.clone(),
            host_network: settings.network.as_deref() == Some("host"),
            limits: settings.limits.clone(),
            setup: settings.setup.clone(),
            rebuild: opts.rebuild,
            privileged: cells
                .iter()
                .any(|c| notebook.cells[c.index].attrs.privileged),
            hidden: vec![notebook_dir.clone(), golden_dir_root.clone()],
        },
        total_timeout: settings.total_timeout,
        output_cap,
        fail_fast: opts.fail_fast,
        keep: opts.keep,
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
