//! The executor: runs a plan's cells in order in one session and emits events.
//!
//! It owns timeouts (per cell and total) and the environment's lifetime; the caller owns
//! interrupts (dropping the future kills everything). Verdicts come from `check`.

use std::fs;
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use crate::check;
use crate::env::{EnvError, Environment};
use crate::exec::background::{Background, Ready};
use crate::exec::cell_shell;
use crate::exec::copy::CopyCell;
use crate::exec::machines::Machines;
use crate::exec::pty;
use crate::exec::pty::conversation::Script;
use crate::exec::session::{RunOptions, ShellSession, shell_quote};
use crate::exec::sessions::Sessions;
use crate::notebook::{BackendKind, Cell, CellKind};
use crate::outcome::{
    CellOutcome, CommandRun, ExitStatus, Failure, NotebookOutcome, ShellEvent, StepOutcome, Verdict,
};
use crate::plan::{Plan, PlannedCell};
use crate::report::{Event, Reporter};

/// labrun itself could not run the notebook (exit status 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Environment { path: String, source: EnvError },
}

/// Runs one notebook to the end (or to its first failure with `--fail-fast`).
pub async fn run_notebook(
    plan: &Plan,
    reporter: &mut dyn Reporter,
) -> Result<NotebookOutcome, RunError> {
    let started = Instant::now();
    reporter.event(&Event::NotebookStarted { plan });
    let env_error = |source: EnvError| RunError::Environment {
        path: plan.notebook.path.display().to_string(),
        source,
    };
    crate::trace::mark("planned");
    let mut machines = Machines::start(plan).await.map_err(env_error)?;
    crate::trace::mark("shell started");
    if plan.env.submission.is_some() {
        copy_submission(&mut machines.get(0).sessions, plan.output_cap)
            .await
            .map_err(env_error)?;
    }
    let mut outcome = NotebookOutcome {
        path: plan.notebook.path.clone(),
        cells: Vec::new(),
        duration: Duration::ZERO,
        aborted: None,
        warnings: machines.warnings(plan),
    };
    for message in &outcome.warnings {
        reporter.event(&Event::Warning { plan, message });
    }
    let deadline = plan.total_timeout.map(|t| (started + t, t));
    let mut file_seq = 0u64;
    // Declared after the machines (and their sessions): dropped, so killed, before them, however
    // the run ends.
    let mut background: Vec<Background> = Vec::new();
    for planned in &plan.cells {
        let cell = plan.cell(planned);
        if let Some((at, total)) = deadline
            && Instant::now() >= at
        {
            outcome.aborted = Some(format!(
                "total_timeout of {} reached; later cells did not run",
                crate::units::show_duration(total)
            ));
            break;
        }
        reporter.event(&Event::CellStarted { plan, cell });
        let cell_started = Instant::now();
        let remaining = deadline.map(|(at, _)| at.saturating_duration_since(Instant::now()));
        let timeout = remaining.map_or(planned.timeout, |r| r.min(planned.timeout));
        let (verdict, steps, mut notes) = if let CellKind::Copy { steps } = &planned.kind {
            let copy = CopyCell {
                plan,
                planned,
                timeout,
            };
            let (verdict, notes) = copy
                .run(&mut machines, steps)
                .await
                .map_err(|e| env_error(EnvError::Io(e)))?;
            (verdict, Vec::new(), notes)
        } else {
            let machine = machines.get(planned.target);
            let session = machine
                .sessions
                .for_cell(cell.attrs.privileged)
                .await
                .map_err(|e| env_error(EnvError::Io(e)))?;
            let mut ctx = CellContext {
                session,
                environment: &machine.environment,
                plan,
                planned,
                cell,
                timeout,
                reporter: &mut *reporter,
                file_seq: &mut file_seq,
                background: &mut background,
            };
            ctx.run().await.map_err(|e| env_error(EnvError::Io(e)))?
        };
        let machine = machines.get(planned.target);
        // What the limits counted since the last cell (one reading per cell: the reading
        // after a cell is the one before the next).
        if let (Some(watch), Some(before)) = (&machine.environment.watch, machine.usage.as_mut()) {
            let after = watch.usage();
            notes.extend(watch.notes(before, &after));
            *before = after;
        }
        let cell_outcome = CellOutcome {
            id: cell.id.clone(),
            line: cell.line,
            kind: planned.kind.name(),
            verdict,
            steps,
            notes,
            duration: cell_started.elapsed(),
        };
        reporter.event(&Event::CellFinished {
            plan,
            cell,
            outcome: &cell_outcome,
        });
        let failed = cell_outcome.verdict.is_failed();
        outcome.cells.push(cell_outcome);
        if failed && plan.fail_fast {
            outcome.aborted = Some("stopped at the first failing cell (--fail-fast)".into());
            break;
        }
    }
    crate::trace::mark("cells run");
    drop(background);
    if plan.keep {
        for message in machines.keep().map_err(env_error)? {
            reporter.event(&Event::Warning {
                plan,
                message: &message,
            });
        }
    } else {
        drop(machines);
    }
    crate::trace::mark("environment removed");
    outcome.duration = started.elapsed();
    reporter.event(&Event::NotebookFinished {
        plan,
        outcome: &outcome,
    });
    Ok(outcome)
}

/// Grade mode: copies the submission (read-only at `/lab/.submission`) into the working
/// directory before the first cell, so the grader's cells find its files in place.
async fn copy_submission(sessions: &mut Sessions, output_cap: u64) -> Result<(), EnvError> {
    let session = sessions.for_cell(false).await?;
    let env = std::collections::BTreeMap::new();
    let opts = RunOptions {
        timeout: Duration::from_secs(60),
        split_streams: false,
        env: &env,
        cwd: None,
        output_cap,
        live: None,
    };
    let run = session
        .run_batch(&["cp -R /lab/.submission/. ./"], opts)
        .await?
        .remove(0);
    if run.status != ExitStatus::Code(0) {
        return Err(EnvError::Other(format!(
            "could not copy the submission into the working directory: {}",
            String::from_utf8_lossy(&run.output).trim()
        )));
    }
    Ok(())
}

struct CellContext<'a> {
    session: &'a mut ShellSession,
    environment: &'a Environment,
    plan: &'a Plan,
    planned: &'a PlannedCell,
    cell: &'a Cell,
    timeout: Duration,
    reporter: &'a mut dyn Reporter,
    file_seq: &'a mut u64,
    background: &'a mut Vec<Background>,
}

type CellResult = (Verdict, Vec<StepOutcome>, Vec<String>);

fn notes_for(run: &CommandRun, notes: &mut Vec<String>) {
    if let Some(ShellEvent::Replaced {
        reason,
        state_restored,
    }) = &run.shell_event
    {
        notes.push(format!(
            "{reason}; a new shell took over{}",
            if *state_restored {
                " with the state it had saved (variables, working directory, and functions where the shell can list them)"
            } else {
                " (its variables and functions were lost; the working directory was kept)"
            }
        ));
    }
    if run.truncated > 0 {
        notes.push(format!(
            "output cut at the cap: [truncated {} bytes]",
            run.truncated
        ));
    }
}

/// How a cell's program runs on a terminal.
fn terminal_limits<'c>(
    cell: &'c Cell,
    plan: &Plan,
    timeout: Duration,
    cwd: Option<&'c str>,
) -> pty::program::Limits<'c> {
    pty::program::Limits {
        env: &cell.attrs.env,
        cwd,
        timeout,
        output_cap: plan.output_cap,
    }
}

fn screen_notes(talk: &pty::conversation::Talk, notes: &mut Vec<String>) {
    if talk.truncated > 0 {
        notes.push(format!(
            "screen cut at the output cap: [truncated {} bytes]",
            talk.truncated
        ));
    }
}

impl CellContext<'_> {
    /// Runs one command of this cell.
    async fn command(
        &mut self,
        script: &str,
        split: bool,
        cwd: Option<&str>,
    ) -> std::io::Result<CommandRun> {
        let mut runs = self.batch(&[script], split, cwd).await?;
        Ok(runs.remove(0))
    }

    /// `script` run as the cell's `user:` with its `shell:`.
    fn as_cell_says(&self, script: &str) -> String {
        let attrs = &self.cell.attrs;
        let session_shell = self.session.launch().program.to_string_lossy();
        cell_shell::wrap(
            script,
            attrs.user.as_deref(),
            attrs.shell.as_deref(),
            &session_shell,
            self.session.dialect(),
        )
    }

    /// Runs one of labrun's own commands for this cell.
    async fn labrun_command(&mut self, script: &str, split: bool) -> std::io::Result<CommandRun> {
        let mut runs = self.run_as_written(&[script], split, None).await?;
        Ok(runs.remove(0))
    }

    /// Runs commands of this cell (a transcript's steps) in one batch: one round trip to the
    /// shell, each command still captured, timed and checked on its own.
    async fn batch(
        &mut self,
        scripts: &[&str],
        split: bool,
        cwd: Option<&str>,
    ) -> std::io::Result<Vec<CommandRun>> {
        let wrapped: Vec<String> = scripts.iter().map(|s| self.as_cell_says(s)).collect();
        let scripts: Vec<&str> = wrapped.iter().map(String::as_str).collect();
        self.run_as_written(&scripts, split, cwd).await
    }

    /// Runs labrun's own commands for a cell (writing a file, reading one to edit), as the
    /// session's user and shell whatever the cell says.
    async fn run_as_written(
        &mut self,
        scripts: &[&str],
        split: bool,
        cwd: Option<&str>,
    ) -> std::io::Result<Vec<CommandRun>> {
        let plan = self.plan;
        let reporter = &mut *self.reporter;
        let cell = self.cell;
        let mut live = |chunk: &[u8]| reporter.event(&Event::Output { plan, cell, chunk });
        let opts = RunOptions {
            timeout: self.timeout,
            split_streams: split,
            env: &self.cell.attrs.env,
            cwd,
            output_cap: self.plan.output_cap,
            live: Some(&mut live),
        };
        self.session.run_batch(scripts, opts).await
    }

    /// Resolves `path:` for this cell; on the host backend it must stay inside the run.
    fn cell_cwd(&self) -> Result<Option<String>, String> {
        match &self.cell.attrs.path {
            None => Ok(None),
            Some(p) => self.inside_path(p).map(Some),
        }
    }

    /// A path a cell names, checked so that it cannot leave the environment's working area.
    fn inside_path(&self, p: &str) -> Result<String, String> {
        let path = Path::new(p);
        if self.plan.target_of(self.planned).backend == BackendKind::Host {
            if path.is_absolute() {
                return Err(format!(
                    "path '{p}' is absolute; on the host backend paths stay inside the lab's working directory"
                ));
            }
            if path.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(format!(
                    "path '{p}' leaves the lab's working directory (..)"
                ));
            }
            // Symlinks an earlier cell planted must not lead out either.
            let base = &self.environment.workdir_host;
            let mut probe = base.clone();
            for c in path.components() {
                probe.push(c);
                if let Ok(real) = probe.canonicalize()
                    && !real.starts_with(base.canonicalize().unwrap_or_else(|_| base.clone()))
                {
                    return Err(format!(
                        "path '{p}' leads out of the lab's working directory through a symlink"
                    ));
                }
            }
            return Ok(base.join(path).to_string_lossy().into_owned());
        }
        Ok(p.to_string())
    }

    fn error(message: String) -> CellResult {
        (
            Verdict::Failed(vec![Failure::Error { message }]),
            Vec::new(),
            Vec::new(),
        )
    }

    /// Writes `content` into the control directory and returns its path as the shell sees it.
    fn stage(&mut self, content: &str) -> std::io::Result<String> {
        *self.file_seq += 1;
        let name = format!("f.{}", self.file_seq);
        let launch = &self.environment.launch;
        fs::write(launch.control_dir.join(&name), content)?;
        Ok(format!("{}/{name}", launch.control_dir_inside))
    }

    /// A `tty: true` command: on a terminal, its stdin ended at once.
    async fn on_terminal(
        &mut self,
        script: &str,
        cwd: Option<&str>,
        expected: Option<&str>,
    ) -> std::io::Result<CellResult> {
        let attrs = &self.cell.attrs;
        let on_tty = Script {
            prompt: None,
            typed: &[],
            end_of_file: true,
        };
        let command = self.as_cell_says(script);
        let limits = terminal_limits(self.cell, self.plan, self.timeout, cwd);
        let ran = pty::program::run(self.session, &command, &on_tty, limits).await?;
        let (verdict, run) = check::terminal::check_tty(
            attrs,
            expected,
            &ran.talk,
            ran.status,
            (self.timeout, ran.duration),
        );
        let step = StepOutcome {
            command: script.to_owned(),
            line: self.cell.line,
            run,
            verdict: verdict.clone(),
        };
        let mut notes = Vec::new();
        screen_notes(&ran.talk, &mut notes);
        Ok((verdict, vec![step], notes))
    }

    /// A `spawn`/`serve` command: started in the background, waited for when `wait_for:`
    /// says what ready looks like; it runs until the run ends.
    async fn in_background(
        &mut self,
        script: &str,
        cwd: Option<&str>,
    ) -> std::io::Result<CellResult> {
        let attrs = &self.cell.attrs;
        let command = self.as_cell_says(script);
        let program = Background::start(self.session, &command, &attrs.env, cwd).await?;
        let deadline = Instant::now() + self.timeout;
        let waited = match attrs.wait_for.as_deref().map(Ready::parse) {
            Some(ready) => program.wait(&ready, self.session, deadline).await,
            None => Ok(()),
        };
        let printed = program.output();
        self.background.push(program);
        Ok(match waited {
            Ok(()) => (Verdict::Passed, Vec::new(), Vec::new()),
            Err(why) => Self::error(format!(
                "the background program is not ready: {why}; it printed:\n{}",
                check::terminal::quoted(&printed)
            )),
        })
    }

    /// An `edit` cell: the file is read from the environment, the diff applied here, the
    /// result written back.
    async fn edit(&mut self, diff: &str) -> std::io::Result<CellResult> {
        let path = self.cell.attrs.path.clone().unwrap_or_default();
        let target = match self.inside_path(&path) {
            Ok(t) => t,
            Err(m) => return Ok(Self::error(m)),
        };
        let run_tool = self.session.dialect().run_tool();
        let read = self
            .command(
                &format!("{run_tool} cat -- {}", shell_quote(&target)),
                true,
                None,
            )
            .await?;
        if read.status != ExitStatus::Code(0) {
            return Ok(Self::error(format!(
                "could not read {path}: {}",
                String::from_utf8_lossy(&read.stderr).trim()
            )));
        }
        let original = String::from_utf8_lossy(&read.output);
        let edited = match crate::unified_diff::apply(&original, diff) {
            Ok(text) => text,
            Err(e) => {
                return Ok(Self::error(format!(
                    "hunk {} does not apply to {path}: {}\n{}",
                    e.number,
                    e.reason,
                    check::terminal::quoted(&e.text)
                )));
            }
        };
        let staged = self.stage(&edited)?;
        let script = format!(
            "{run_tool} cat -- {} > {}",
            shell_quote(&staged),
            shell_quote(&target)
        );
        let run = self.labrun_command(&script, false).await?;
        Ok(Self::written(&path, &run))
    }

    /// The verdict of writing a file (`file` and `edit` cells).
    fn written(path: &str, run: &CommandRun) -> CellResult {
        let mut notes = Vec::new();
        notes_for(run, &mut notes);
        let verdict = if run.status == ExitStatus::Code(0) && run.timed_out.is_none() {
            Verdict::Passed
        } else {
            Verdict::Failed(vec![Failure::Error {
                message: format!(
                    "could not write {path}: {}",
                    String::from_utf8_lossy(&run.output).trim()
                ),
            }])
        };
        (verdict, Vec::new(), notes)
    }

    async fn run(&mut self) -> std::io::Result<CellResult> {
        let attrs = &self.cell.attrs;
        let expected = self.planned.expected.as_ref().map(|e| e.text.clone());
        let cwd = match self.cell_cwd() {
            Ok(c) => c,
            Err(m) => return Ok(Self::error(m)),
        };
        let mut notes = Vec::new();
        if self.session.is_remote()
            && let Some(kind) = needs_local_shell(&self.planned.kind, attrs)
        {
            return Ok(Self::error(format!(
                "{kind} cells are not supported on the vm backend yet; run this notebook on the container backend"
            )));
        }
        match self.planned.kind.clone() {
            CellKind::Skipped { reason } => Ok((Verdict::Skipped { reason }, Vec::new(), notes)),
            CellKind::Copy { .. } => Ok(Self::error(
                "internal error: copy cells run with every machine at hand".into(),
            )),
            CellKind::Command { script } if attrs.tty => {
                self.on_terminal(&script, cwd.as_deref(), expected.as_deref())
                    .await
            }
            CellKind::Command { script } if attrs.background => {
                self.in_background(&script, cwd.as_deref()).await
            }
            CellKind::Interactive {
                command,
                banner,
                steps,
            } => {
                let typed: Vec<String> = steps.iter().map(|s| s.command.clone()).collect();
                let script = Script {
                    prompt: attrs.prompt.as_deref(),
                    typed: &typed,
                    end_of_file: false,
                };
                let started = self.as_cell_says(&command);
                let limits = terminal_limits(self.cell, self.plan, self.timeout, cwd.as_deref());
                let ran = pty::program::run(self.session, &started, &script, limits).await?;
                screen_notes(&ran.talk, &mut notes);
                let (verdict, outcomes) = check::terminal::check_interactive(
                    attrs,
                    (&command, self.cell.line),
                    &banner,
                    &steps,
                    &ran.talk,
                    ran.status,
                    self.timeout,
                );
                Ok((verdict, outcomes, notes))
            }
            CellKind::Edit { diff } => self.edit(&diff).await,
            CellKind::Command { script } => {
                let split = check::split_streams(attrs, false);
                let run = self.command(&script, split, cwd.as_deref()).await?;
                notes_for(&run, &mut notes);
                let verdict = check::check_command(attrs, expected.as_deref(), &run);
                let step = StepOutcome {
                    command: script,
                    line: self.cell.line,
                    run,
                    verdict: verdict.clone(),
                };
                Ok((verdict, vec![step], notes))
            }
            CellKind::Script {
                interpreter,
                program,
            } => {
                let staged = self.stage(&program)?;
                let runner = match interpreter.as_str() {
                    "python" => format!(
                        "if command -v python >/dev/null 2>&1; then python {f}; else python3 {f}; fi",
                        f = shell_quote(&staged)
                    ),
                    other => format!("{} {}", shell_quote(other), shell_quote(&staged)),
                };
                let split = check::split_streams(attrs, false);
                let check_interp = format!(
                    "command -v {i} >/dev/null 2>&1 || {{ echo \"labrun: the interpreter '{i}' is not installed in this environment\" >&2; exit 127; }}; {runner}",
                    i = if interpreter == "python" {
                        "python3".to_string()
                    } else {
                        interpreter.clone()
                    }
                );
                let run = self.command(&check_interp, split, cwd.as_deref()).await?;
                notes_for(&run, &mut notes);
                let verdict = check::check_command(attrs, expected.as_deref(), &run);
                Ok((
                    verdict.clone(),
                    vec![StepOutcome {
                        command: program,
                        line: self.cell.line,
                        run,
                        verdict,
                    }],
                    notes,
                ))
            }
            CellKind::File { content } => {
                let Some(target) = attrs.path.clone() else {
                    return Ok(Self::error("a file cell needs a path".into()));
                };
                let target = match self.inside_path(&target) {
                    Ok(t) => t,
                    Err(m) => return Ok(Self::error(m)),
                };
                let staged = self.stage(&content)?;
                let redirect = if attrs.append { ">>" } else { ">" };
                // Past any function a cell defined, in the session shell's own words.
                let run_tool = self.session.dialect().run_tool();
                let mut script = format!(
                    "{run_tool} mkdir -p -- \"$(dirname -- {t})\" && {run_tool} cat -- {s} {redirect} {t}",
                    t = shell_quote(&target),
                    s = shell_quote(&staged)
                );
                if let Some(perm) = &attrs.permission {
                    script.push_str(&format!(
                        " && {run_tool} chmod {} -- {}",
                        shell_quote(perm),
                        shell_quote(&target)
                    ));
                }
                if let Some(user) = &attrs.user {
                    script.push_str(&format!(
                        " && {run_tool} chown {} -- {}",
                        shell_quote(user),
                        shell_quote(&target)
                    ));
                }
                let run = self.labrun_command(&script, false).await?;
                Ok(Self::written(attrs.path.as_deref().unwrap_or(""), &run))
            }
            CellKind::Transcript { steps, stdout_only } => {
                let split = check::split_streams(attrs, stdout_only);
                let scripts: Vec<&str> = steps.iter().map(|s| s.command.as_str()).collect();
                let runs = self.batch(&scripts, split, cwd.as_deref()).await?;
                let mut outcomes = Vec::new();
                let mut failed = Vec::new();
                for (step, run) in steps.iter().zip(runs) {
                    notes_for(&run, &mut notes);
                    let verdict = check::check_step(step, attrs, &run);
                    if let Verdict::Failed(f) = &verdict {
                        failed.extend(f.iter().cloned());
                    }
                    outcomes.push(StepOutcome {
                        command: step.command.clone(),
                        line: step.line,
                        run,
                        verdict,
                    });
                }
                let verdict = if failed.is_empty() {
                    Verdict::Passed
                } else {
                    Verdict::Failed(failed)
                };
                Ok((verdict, outcomes, notes))
            }
        }
    }
}

/// The kinds of cell that need a shell on this machine (a terminal labrun owns, a process it
/// watches), which a session in a virtual machine does not give.
fn needs_local_shell(kind: &CellKind, attrs: &crate::notebook::Attrs) -> Option<&'static str> {
    match kind {
        CellKind::Interactive { .. } => Some("interactive"),
        CellKind::Command { .. } if attrs.tty => Some("tty"),
        CellKind::Command { .. } if attrs.background => Some("background (spawn and serve)"),
        _ => None,
    }
}
