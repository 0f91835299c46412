//! Rendering a diff for a human reader, with the differing words highlighted.
//!
//! Every line goes through [`display_line`], so nothing a cell printed reaches the reader's
//! terminal raw. Without colour the result holds no escape sequence at all.

use similar::{ChangeTag, TextDiff};

use super::escape::display_line;
use super::matcher::DiffLine;

/// Lines of unchanged output kept around each change.
const CONTEXT: usize = 3;

/// Longest pair of lines (in bytes) whose words are compared; longer pairs are shown whole.
const MAX_HIGHLIGHT: usize = 16 * 1024;

/// Time allowed for comparing the words of one pair; past it the diff is coarser.
const HIGHLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(20);

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const DIM_RED: &str = "\x1b[2;31m";
const DIM_GREEN: &str = "\x1b[2;32m";
const BOLD_RED: &str = "\x1b[1;31m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const CYAN: &str = "\x1b[36m";

/// Renders `diff` as text: a `--- expected` / `+++ actual` header, then `  ` unchanged lines,
/// `- ` expected lines that matched nothing and `+ ` actual lines nothing matched. Runs of
/// unchanged lines longer than the context around changes collapse to `@@ N lines @@`.
/// When missing lines are followed by unexpected ones they are paired, and with `color` the
/// words that differ are bold on dim red/green lines; unpaired lines are plain red/green.
pub fn render_diff(diff: &[DiffLine], color: bool) -> String {
    let mut out = String::new();
    push_styled(&mut out, color, RED, "--- expected");
    out.push('\n');
    push_styled(&mut out, color, GREEN, "+++ actual");
    out.push('\n');

    let visible = visible_same_lines(diff);
    let mut i = 0;
    while i < diff.len() {
        match &diff[i] {
            DiffLine::Same(line) => {
                if visible[i] {
                    out.push_str("  ");
                    out.push_str(&display_line(line));
                    out.push('\n');
                    i += 1;
                } else {
                    let hidden = visible[i..].iter().take_while(|v| !**v).count();
                    let marker =
                        format!("@@ {hidden} line{} @@", if hidden == 1 { "" } else { "s" });
                    push_styled(&mut out, color, CYAN, &marker);
                    out.push('\n');
                    i += hidden;
                }
            }
            _ => {
                let run = diff[i..].iter().take_while(|d| d.is_change()).count();
                render_changes(&mut out, &diff[i..i + run], color);
                i += run;
            }
        }
    }
    out
}

/// Which lines are shown: every change, unchanged lines within the context of a change, and
/// a hidden run of a single line (a marker would be no shorter).
fn visible_same_lines(diff: &[DiffLine]) -> Vec<bool> {
    let mut visible = vec![false; diff.len()];
    for (i, line) in diff.iter().enumerate() {
        if line.is_change() {
            let from = i.saturating_sub(CONTEXT);
            let to = (i + CONTEXT + 1).min(diff.len());
            visible[from..to].iter_mut().for_each(|v| *v = true);
        }
    }
    let mut i = 0;
    while i < diff.len() {
        if visible[i] {
            i += 1;
            continue;
        }
        let hidden = visible[i..].iter().take_while(|v| !**v).count();
        if hidden == 1 {
            visible[i] = true;
        }
        i += hidden;
    }
    visible
}

/// Renders a run of changes: missing lines first, then unexpected ones, pairing the k-th
/// missing line with the k-th unexpected one for word highlighting.
fn render_changes(out: &mut String, run: &[DiffLine], color: bool) {
    let missing: Vec<String> = run
        .iter()
        .filter_map(|d| match d {
            DiffLine::Missing(text) => Some(display_line(text.as_bytes())),
            _ => None,
        })
        .collect();
    let unexpected: Vec<String> = run
        .iter()
        .filter_map(|d| match d {
            DiffLine::Unexpected(line) => Some(display_line(line)),
            _ => None,
        })
        .collect();
    let pairs = missing.len().min(unexpected.len());
    let highlights: Vec<(String, String)> = (0..pairs)
        .map(|k| highlight_words(&missing[k], &unexpected[k], color))
        .collect();
    for (k, text) in missing.iter().enumerate() {
        match highlights.get(k) {
            Some((old, _)) => out.push_str(old),
            None => push_styled(out, color, RED, &format!("- {text}")),
        }
        out.push('\n');
    }
    for (k, text) in unexpected.iter().enumerate() {
        match highlights.get(k) {
            Some((_, new)) => out.push_str(new),
            None => push_styled(out, color, GREEN, &format!("+ {text}")),
        }
        out.push('\n');
    }
}

/// The `- ` and `+ ` lines of a pair, with the words that differ emphasised.
fn highlight_words(old: &str, new: &str, color: bool) -> (String, String) {
    if !color {
        return (format!("- {old}"), format!("+ {new}"));
    }
    if old.len() + new.len() > MAX_HIGHLIGHT {
        return (
            format!("{RED}- {old}{RESET}"),
            format!("{GREEN}+ {new}{RESET}"),
        );
    }
    let diff = TextDiff::configure()
        .timeout(HIGHLIGHT_TIMEOUT)
        .diff_unicode_words(old, new);
    let mut minus = Styled::new(DIM_RED);
    let mut plus = Styled::new(DIM_GREEN);
    minus.push(DIM_RED, "- ");
    plus.push(DIM_GREEN, "+ ");
    for change in diff.iter_all_changes() {
        let word = change.value();
        match change.tag() {
            ChangeTag::Equal => {
                minus.push(DIM_RED, word);
                plus.push(DIM_GREEN, word);
            }
            ChangeTag::Delete => minus.push(BOLD_RED, word),
            ChangeTag::Insert => plus.push(BOLD_GREEN, word),
        }
    }
    (minus.finish(), plus.finish())
}

/// A line built from styled segments, merging neighbours of the same style.
struct Styled {
    out: String,
    current: &'static str,
    open: bool,
}

impl Styled {
    fn new(style: &'static str) -> Styled {
        Styled {
            out: String::new(),
            current: style,
            open: false,
        }
    }

    fn push(&mut self, style: &'static str, text: &str) {
        if text.is_empty() {
            return;
        }
        if !self.open || style != self.current {
            if self.open {
                self.out.push_str(RESET);
            }
            self.out.push_str(style);
            self.current = style;
            self.open = true;
        }
        self.out.push_str(text);
    }

    fn finish(mut self) -> String {
        if self.open {
            self.out.push_str(RESET);
        }
        self.out
    }
}

fn push_styled(out: &mut String, color: bool, style: &str, text: &str) {
    if color {
        out.push_str(style);
        out.push_str(text);
        out.push_str(RESET);
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(s: &str) -> DiffLine {
        DiffLine::Same(s.as_bytes().to_vec())
    }
    fn missing(s: &str) -> DiffLine {
        DiffLine::Missing(s.to_string())
    }
    fn unexpected(s: &str) -> DiffLine {
        DiffLine::Unexpected(s.as_bytes().to_vec())
    }

    #[test]
    fn plain_rendering() {
        let diff = [same("a"), missing("b"), unexpected("B"), same("c")];
        assert_eq!(
            render_diff(&diff, false),
            "--- expected\n+++ actual\n  a\n- b\n+ B\n  c\n"
        );
    }

    #[test]
    fn unpaired_lines() {
        let diff = [missing("x"), missing("y"), unexpected("z")];
        assert_eq!(
            render_diff(&diff, false),
            "--- expected\n+++ actual\n- x\n- y\n+ z\n"
        );
        let colored = render_diff(&diff, true);
        assert!(colored.contains(&format!("{RED}- y{RESET}")), "{colored:?}");
    }

    #[test]
    fn context_collapses() {
        let mut diff: Vec<DiffLine> = (0..20).map(|i| same(&format!("l{i}"))).collect();
        diff.insert(10, missing("x"));
        let text = render_diff(&diff, false);
        let want = "--- expected\n+++ actual\n@@ 7 lines @@\n  l7\n  l8\n  l9\n- x\n  l10\n  l11\n  l12\n@@ 7 lines @@\n";
        assert_eq!(text, want);
    }

    #[test]
    fn a_single_hidden_line_is_shown() {
        let mut diff: Vec<DiffLine> = (0..4).map(|i| same(&format!("l{i}"))).collect();
        diff.push(unexpected("x"));
        let text = render_diff(&diff, false);
        assert_eq!(
            text,
            "--- expected\n+++ actual\n  l0\n  l1\n  l2\n  l3\n+ x\n"
        );
    }

    #[test]
    fn gaps_between_changes() {
        let mut diff: Vec<DiffLine> = (0..12).map(|i| same(&format!("l{i}"))).collect();
        diff.insert(0, missing("first"));
        diff.push(unexpected("last"));
        let text = render_diff(&diff, false);
        assert_eq!(
            text,
            "--- expected\n+++ actual\n- first\n  l0\n  l1\n  l2\n@@ 6 lines @@\n  l9\n  l10\n  l11\n+ last\n"
        );
    }

    #[test]
    fn words_are_highlighted_with_colour() {
        let diff = [
            missing("size is 1024 bytes"),
            unexpected("size is 2048 bytes"),
        ];
        let text = render_diff(&diff, true);
        assert!(text.contains(&format!("{BOLD_RED}1024{RESET}")), "{text:?}");
        assert!(
            text.contains(&format!("{BOLD_GREEN}2048{RESET}")),
            "{text:?}"
        );
        assert!(
            text.contains(&format!("{DIM_RED}- size is {RESET}")),
            "{text:?}"
        );
        assert!(
            text.contains(&format!("{DIM_GREEN}+ size is {RESET}")),
            "{text:?}"
        );
        // Unchanged words are not emphasised.
        assert!(!text.contains(&format!("{BOLD_RED}size")), "{text:?}");
    }

    #[test]
    fn very_long_lines_are_shown_whole() {
        let old = "a ".repeat(10_000);
        let new = "b ".repeat(10_000);
        let text = render_diff(
            &[
                DiffLine::Missing(old.clone()),
                DiffLine::Unexpected(new.clone().into_bytes()),
            ],
            true,
        );
        assert!(text.contains(&format!("{RED}- {old}{RESET}")));
        assert!(text.contains(&format!("{GREEN}+ {new}{RESET}")));
    }

    #[test]
    fn no_escapes_without_colour() {
        let diff = [
            same("\x1b[31mred"),
            missing("size is 1024 bytes"),
            unexpected("size is 2048 bytes"),
            unexpected("\x1b]0;title\x07\r\x00\u{202e}"),
            DiffLine::Unexpected(b"\xff\xfe".to_vec()),
        ];
        let text = render_diff(&diff, false);
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(!text.contains('\r'));
        assert!(!text.contains('\0'));
        assert!(!text.contains('\u{202e}'));
        assert!(text.contains("  \\x1b[31mred\n"));
        assert!(text.contains("+ \\xff\\xfe\n"));
    }

    #[test]
    fn cell_escapes_never_reach_the_terminal_with_colour() {
        let diff = [
            missing("ok"),
            unexpected("\x1b[2J\x1b]52;c;ZXZpbA==\x07"),
            same("\x1b[H"),
        ];
        let text = render_diff(&diff, true);
        // Only our own SGR sequences remain: every ESC starts `ESC [ digits ; digits m`.
        for (at, _) in text.match_indices('\x1b') {
            let rest = &text[at + 1..];
            let end = rest.find('m').expect("sgr ends in m");
            assert!(rest.starts_with('['), "{rest:?}");
            assert!(
                rest[1..end].chars().all(|c| c.is_ascii_digit() || c == ';'),
                "{rest:?}"
            );
        }
        assert!(text.contains("\\x1b[2J"));
    }

    #[test]
    fn only_changes_and_marker_for_all_same() {
        let diff: Vec<DiffLine> = (0..10).map(|i| same(&format!("l{i}"))).collect();
        assert_eq!(
            render_diff(&diff, false),
            "--- expected\n+++ actual\n@@ 10 lines @@\n"
        );
        assert_eq!(render_diff(&[], false), "--- expected\n+++ actual\n");
    }
}
