//! The parsed notebook: its settings, its cells and the byte spans `--update` rewrites.
//!
//! Pure data. The parser builds it, the planner reads it, bless rewrites the spans it records.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A byte range of the notebook's original text, with the 1-based line of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: u32,
}

/// A cell's stable name: `id:` when given, else `<heading slug>-<n>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellId(pub String);

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

#[derive(Debug, Clone)]
pub struct Notebook {
    pub path: PathBuf,
    /// The text exactly as read (BOM and CRLF kept), so spans index it.
    pub source: String,
    pub line_ending: LineEnding,
    pub settings: Settings,
    pub cells: Vec<Cell>,
    /// Fenced blocks that are not cells (prose, `labrun list` shows them as not run).
    pub not_run: Vec<ProseBlock>,
    pub warnings: Vec<Diagnostic>,
}

/// A fenced block labrun reads as prose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProseBlock {
    /// Line of the opening fence.
    pub line: u32,
    /// The first word of its info string (may be empty).
    pub lang: String,
    /// Its first non-empty line.
    pub first_line: String,
}

/// A warning or error that points into a notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    #[default]
    Container,
    Host,
    Vm,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Container => "container",
            BackendKind::Host => "host",
            BackendKind::Vm => "vm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Only blocks that opt in (annotation or transcript language) are cells.
    #[default]
    Marked,
    /// Every bash/sh/shell block is a cell too.
    All,
}

/// The `labrun:` mapping of the front matter (or docable's setup comment), validated.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub backend: Option<BackendKind>,
    pub image: Option<String>,
    pub setup: Vec<String>,
    pub shell: Option<String>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    pub network: Option<String>,
    pub limits: BTreeMap<String, String>,
    pub run: RunMode,
    pub kernel: Option<String>,
    /// The machines of a several-machine lab, in order; the first is the default (section 6).
    /// Empty: one machine, made from the settings above.
    pub targets: Vec<Target>,
    /// Line of the front matter's opening, for errors that concern settings.
    pub line: u32,
}

/// One machine of a several-machine lab: its name (also its host name on the lab's network)
/// and what it sets for itself (the notebook's settings fill in the rest).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub name: String,
    pub settings: Settings,
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub id: CellId,
    /// Line of the opening fence.
    pub line: u32,
    /// The whole fenced block, fences included.
    pub block: Span,
    /// The body between the fences.
    pub body: Span,
    /// The fence as written (for example "```" or "~~~~"), so updates can lengthen it.
    pub fence: String,
    /// Columns of indentation before the fence (list items); rewritten lines get the same.
    pub indent: usize,
    /// What the block's lines carry before their content: list indentation, or `> ` in a
    /// blockquote (taken from the first body line, else the closing fence's line). A line
    /// `--update` writes into this block starts with it.
    pub prefix: String,
    /// The block's language: the first word of its info string.
    pub lang: String,
    pub kind: CellKind,
    pub attrs: Attrs,
    /// Expected output from an inline source (transcript lines come with each step instead).
    pub expected: Option<Expected>,
}

#[derive(Debug, Clone)]
pub enum CellKind {
    /// A shell script run in the session.
    Command { script: String },
    /// `$ cmd` steps, each with its own expected output and exit status.
    Transcript { steps: Vec<Step>, stdout_only: bool },
    /// `type: file`: write the body to `path`.
    File { content: String },
    /// `type: script`: run the body with the interpreter its language names.
    Script {
        interpreter: String,
        program: String,
    },
    /// `type: copy`: files between machines, into one from the notebook's directory, or out
    /// into `--artifacts`.
    Copy {
        steps: Vec<super::copy_spec::CopyStep>,
    },
    /// `type: interactive`: `command` starts a program on a terminal; each step types its
    /// `command` when the cell's prompt shows and expects the screen output after it.
    Interactive {
        command: String,
        /// Expected lines before the first prompt (compared only when some are written).
        banner: String,
        steps: Vec<Step>,
    },
    /// `type: edit`: a unified diff applied to the cell's `path`.
    Edit { diff: String },
    /// Never run: docable UI cells, `skip: true`, `ignore`, another `platform`.
    Skipped { reason: String },
}

impl CellKind {
    /// The kind as reports and `labrun list` name it.
    pub fn name(&self) -> &'static str {
        match self {
            CellKind::Command { .. } => "command",
            CellKind::Transcript { .. } => "transcript",
            CellKind::File { .. } => "file",
            CellKind::Script { .. } => "script",
            CellKind::Copy { .. } => "copy",
            CellKind::Interactive { .. } => "interactive",
            CellKind::Edit { .. } => "edit",
            CellKind::Skipped { .. } => "skipped",
        }
    }
}

/// One `$ ` step of a transcript.
#[derive(Debug, Clone)]
pub struct Step {
    /// The command, continuation lines joined with newlines, without `$ ` / `> `.
    pub command: String,
    pub line: u32,
    /// Expected output lines as written (patterns included), joined with `\n`, no trailing newline.
    pub expected: String,
    /// Bytes of the expected lines in the source (empty range right after the command when none).
    pub expected_span: Span,
    /// Exit status from a trailing `[N]` line (0 when absent).
    pub exit: i32,
    /// True when a `[N]` line was written.
    pub exit_written: bool,
    /// Bytes of the `[N]` line, line ending included, when one was written.
    pub exit_span: Option<Span>,
}

/// Where a cell's expected output comes from (first match wins, section 5).
#[derive(Debug, Clone)]
pub struct Expected {
    pub source: ExpectedSource,
    /// The expected lines as written, without a trailing newline.
    pub text: String,
    /// For `ExpectedSource::Attribute`: the bytes of the `expect:` value as written (quotes
    /// included), which `--update` replaces; `None` when it is not one literal (a list).
    pub attribute_value: Option<Span>,
}

#[derive(Debug, Clone)]
pub enum ExpectedSource {
    /// A following `output` block; `body` is what `--update` rewrites.
    OutputBlock {
        block: Span,
        body: Span,
        fence: String,
        indent: usize,
        /// Written before each body line, like `Cell::prefix`.
        prefix: String,
    },
    /// The `expect:` attribute (rewritten in place only when single-line).
    Attribute,
    /// A golden file under expected-output/.
    Golden(PathBuf),
}

/// What `exit:` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitRule {
    Code(i32),
    OneOf(Vec<i32>),
    Any,
}

impl Default for ExitRule {
    fn default() -> Self {
        ExitRule::Code(0)
    }
}

impl ExitRule {
    pub fn accepts(&self, code: i32) -> bool {
        match self {
            ExitRule::Code(c) => *c == code,
            ExitRule::OneOf(cs) => cs.contains(&code),
            ExitRule::Any => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    #[default]
    Both,
    Stdout,
    Stderr,
}

/// A cell's attributes, typed. Unknown keys become warnings at parse time.
#[derive(Debug, Clone)]
pub struct Attrs {
    pub id: Option<String>,
    pub timeout: Option<Duration>,
    pub exit: ExitRule,
    pub expect: Option<String>,
    pub failed_when: Option<String>,
    pub path: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    pub env: BTreeMap<String, String>,
    pub stream: Stream,
    pub keep_ansi: bool,
    pub tty: bool,
    pub skip: bool,
    pub platform: Option<String>,
    pub target: Option<String>,
    pub points: Option<f64>,
    pub hint: Option<String>,
    pub hidden: bool,
    pub partial: bool,
    /// `record: false` keeps `--update` from writing a golden file for this cell.
    pub record: bool,
    pub permission: Option<String>,
    pub append: bool,
    pub variables: Vec<String>,
    /// `prompt:` of an interactive cell (what the program shows when it waits for a line).
    pub prompt: Option<String>,
    /// `spawn: true` / `serve: true`: the command runs in the background until the run ends.
    pub background: bool,
    /// `wait_for:` of a background cell: `port:N`, `file:PATH`, or a line of its output.
    pub wait_for: Option<String>,
    /// `shell:` the program that runs this cell's commands (`bash`, `sh`, ...).
    pub shell: Option<String>,
}

impl Default for Attrs {
    /// What a cell without attributes means: exit 0 expected, recorded by `--update`.
    fn default() -> Self {
        Attrs {
            id: Default::default(),
            timeout: Default::default(),
            exit: Default::default(),
            expect: Default::default(),
            failed_when: Default::default(),
            path: Default::default(),
            user: Default::default(),
            privileged: Default::default(),
            env: Default::default(),
            stream: Default::default(),
            keep_ansi: Default::default(),
            tty: Default::default(),
            skip: Default::default(),
            platform: Default::default(),
            target: Default::default(),
            points: Default::default(),
            hint: Default::default(),
            hidden: Default::default(),
            partial: Default::default(),
            record: true,
            permission: Default::default(),
            append: Default::default(),
            variables: Default::default(),
            prompt: Default::default(),
            background: Default::default(),
            wait_for: Default::default(),
            shell: Default::default(),
        }
    }
}
