//! Comparing normalised output with expected lines: the verdict and the diff behind it.
//!
//! A mismatch is a status carried in [`Comparison`], never an error.

use super::align::{Step, align};
use super::normalize::Actual;
use super::pattern::PatternLine;

/// The verdict on one output and the alignment that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub passed: bool,
    /// Every actual line and every unmatched expected line, in order. Within a run of
    /// changes, missing expected lines come before unexpected actual lines.
    pub diff: Vec<DiffLine>,
}

/// One line of a diff between expected and actual output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// An actual line that an expected line matched.
    Same(Vec<u8>),
    /// An expected line (as written) that matched nothing.
    Missing(String),
    /// An actual line that nothing matched.
    Unexpected(Vec<u8>),
}

impl DiffLine {
    /// True for `Missing` and `Unexpected`.
    pub fn is_change(&self) -> bool {
        !matches!(self, DiffLine::Same(_))
    }
}

/// Compares `actual` with `expected`: passed when every line is accounted for.
pub fn compare(expected: &[PatternLine], actual: &Actual) -> Comparison {
    let alignment = align(expected, actual);
    let mut diff = Vec::with_capacity(alignment.steps.len());
    let mut run_start = 0;
    for step in alignment.steps {
        let line = match step {
            Step::Matched { line, .. } => DiffLine::Same(actual.lines[line].clone()),
            Step::Skipped { .. } => continue,
            Step::Missing { pattern } => DiffLine::Missing(expected[pattern].source().to_string()),
            Step::Unexpected { line } => DiffLine::Unexpected(actual.lines[line].clone()),
        };
        if !line.is_change() {
            missing_first(&mut diff[run_start..]);
            run_start = diff.len() + 1;
        }
        diff.push(line);
    }
    let start = run_start.min(diff.len());
    missing_first(&mut diff[start..]);
    Comparison {
        passed: alignment.cost == 0,
        diff,
    }
}

/// Orders a run of changes as a reader expects: what was expected, then what came instead.
fn missing_first(run: &mut [DiffLine]) {
    run.sort_by_key(|line| !matches!(line, DiffLine::Missing(_)));
}

#[cfg(test)]
mod tests {
    use super::super::diff::render_diff;
    use super::super::normalize::normalize;
    use super::super::pattern::parse_expected;
    use super::super::record::record;
    use super::super::test_support::Rng;
    use super::*;

    fn run(expected: &str, output: &str) -> Comparison {
        compare(
            &parse_expected(expected).unwrap(),
            &normalize(output.as_bytes(), false),
        )
    }

    /// The diff in a compact form: ` x` same, `-x` missing, `+x` unexpected.
    fn shape(c: &Comparison) -> Vec<String> {
        c.diff
            .iter()
            .map(|d| match d {
                DiffLine::Same(l) => format!(" {}", String::from_utf8_lossy(l)),
                DiffLine::Missing(t) => format!("-{t}"),
                DiffLine::Unexpected(l) => format!("+{}", String::from_utf8_lossy(l)),
            })
            .collect()
    }

    #[test]
    fn verdicts() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "\n", false),
            ("a", "", false),
            ("a", "a\n", true),
            ("a", "a", true),
            ("a\nb", "a\nb\n", true),
            ("a\nb", "b\na\n", false),
            ("a  ", "a\t \n", true),
            ("a\n", "a\n", true),
            ("a\n\n", "a\n", false),
            ("a\n", "a\n\n", false),
            // `...`
            ("...", "", true),
            ("...", "x\ny\nz\n", true),
            ("a\n...\nz", "a\nz\n", true),
            ("a\n...\nz", "a\nb\nc\nz\n", true),
            ("a\n...\nz", "a\nb\nc\n", false),
            ("...\nneedle\n...", "hay\nneedle\nhay\n", true),
            ("...\nneedle\n...", "hay\nhay\n", false),
            ("...\n...", "x\n", true),
            // `[..]`
            ("took [..] ms", "took 12 ms\n", true),
            ("took [..] ms", "took 12 s\n", false),
            // regex, glob, esc
            ("v\\d+ (re)", "v12\n", true),
            ("v\\d+ (re)", "v12x\n", false),
            ("v* (glob)", "v12x\n", true),
            ("a\\tb (esc)", "a\tb\n", true),
            ("a\\x07b (esc)", "a\x07b\n", true),
            ("a\\x07b (esc)", "a\x08b\n", false),
            // quantifiers
            ("\\d (re+)", "1\n2\n3\n", true),
            ("\\d (re+)", "", false),
            ("\\d (re*)", "", true),
            ("\\d (re*)\nend", "1\n2\nend\n", true),
            ("\\d (re?)\nend", "end\n", true),
            ("\\d (re?)\nend", "1\nend\n", true),
            ("\\d (re?)\nend", "1\n2\nend\n", false),
            ("x* (glob+)\ny", "x1\nx2\ny\n", true),
            ("x (+)", "x\nx\n", true),
            ("x (?)\ny", "y\n", true),
            ("\\d (re+)\n\\d (re+)", "1\n2\n", true),
            ("\\d (re+)\n\\d (re+)", "1\n", false),
            // no-eol
            ("end (no-eol)", "end", true),
            ("end (no-eol)", "end\n", false),
            ("a\nend (no-eol)", "a\nend", true),
            ("end (no-eol)\nmore", "end\nmore", false),
            ("end", "end", true),
            // `[N]` is not special here.
            ("[1]", "[1]\n", true),
            ("[1]", "", false),
        ];
        for (expected, output, want) in cases {
            let c = run(expected, output);
            assert_eq!(
                c.passed,
                *want,
                "expected {expected:?} output {output:?}: {:?}",
                shape(&c)
            );
            assert_eq!(c.passed, !c.diff.iter().any(DiffLine::is_change));
        }
    }

    #[test]
    fn ansi_is_stripped_before_matching() {
        let expected = parse_expected("red").unwrap();
        let c = compare(&expected, &normalize(b"\x1b[31mred\x1b[0m\r\n", false));
        assert!(c.passed);
        let c = compare(&expected, &normalize(b"\x1b[31mred\x1b[0m\r\n", true));
        assert!(!c.passed);
    }

    #[test]
    fn one_changed_line_is_one_pair() {
        let expected: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
        let mut actual = expected.clone();
        actual[9] = "line nine".to_string();
        let c = run(&expected.join("\n"), &(actual.join("\n") + "\n"));
        assert!(!c.passed);
        let missing: Vec<_> = c
            .diff
            .iter()
            .filter(|d| matches!(d, DiffLine::Missing(_)))
            .collect();
        let unexpected: Vec<_> = c
            .diff
            .iter()
            .filter(|d| matches!(d, DiffLine::Unexpected(_)))
            .collect();
        assert_eq!(missing, vec![&DiffLine::Missing("line 9".to_string())]);
        assert_eq!(
            unexpected,
            vec![&DiffLine::Unexpected(b"line nine".to_vec())]
        );
        assert_eq!(c.diff.len(), 21);
        assert_eq!(c.diff[9], DiffLine::Missing("line 9".to_string()));
        assert_eq!(c.diff[10], DiffLine::Unexpected(b"line nine".to_vec()));
    }

    #[test]
    fn diff_shapes() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("a\nb\nc", "a\nc\n", &[" a", "-b", " c"]),
            ("a\nc", "a\nb\nc\n", &[" a", "+b", " c"]),
            ("a\nb\nc", "a\nX\nc\n", &[" a", "-b", "+X", " c"]),
            ("a\n...\nz", "a\nb\nc\n", &[" a", " b", " c", "-z"]),
            (
                "a\n[..] ms\nz",
                "a\nslow\nz\n",
                &[" a", "-[..] ms", "+slow", " z"],
            ),
            ("\\d (re+)", "1\nx\n2\n", &[" 1", "+x", " 2"]),
            ("\\d (re?)\nend", "x\nend\n", &["+x", " end"]),
            ("a\nb", "", &["-a", "-b"]),
            ("", "a\nb\n", &["+a", "+b"]),
            (
                "a\nb\nc",
                "x\ny\nz\n",
                &["-a", "-b", "-c", "+x", "+y", "+z"],
            ),
            ("end (no-eol)", "end\n", &["-end (no-eol)", "+end"]),
            (
                "...\nh\n[..]\nt\n...",
                "0\nh\nmid\nx\n9\n",
                &[" 0", " h", " mid", "-t", " x", " 9"],
            ),
        ];
        for (expected, output, want) in cases {
            let c = run(expected, output);
            assert_eq!(shape(&c), *want, "expected {expected:?} output {output:?}");
        }
    }

    #[test]
    fn large_outputs_are_fast() {
        // 50,000 lines against 100 patterns, passing and failing in several ways.
        let lines: Vec<String> = (0..50_000)
            .map(|i| format!("row {i} value {}", i * 7))
            .collect();
        let output = lines.join("\n") + "\n";
        let actual = normalize(output.as_bytes(), false);
        let mut scenarios: Vec<(String, bool)> = Vec::new();
        // The last 100 lines after `...`.
        let tail = &lines[lines.len() - 99..];
        scenarios.push((format!("...\n{}", tail.join("\n")), true));
        // 100 regexes spread over the output between `...` lines.
        let spread: Vec<String> = (0..50)
            .map(|k| format!("...\nrow {} value \\d+ (re)", k * 1000))
            .collect();
        scenarios.push((spread.join("\n") + "\n...", true));
        // 100 literal lines that appear nowhere.
        let absent: Vec<String> = (0..100).map(|k| format!("absent {k}")).collect();
        scenarios.push((absent.join("\n"), false));
        scenarios.push((format!("...\n{}\n...", absent.join("\n")), false));
        // 100 regexes that match nothing.
        let nothing: Vec<String> = (0..100).map(|k| format!("nope {k} \\d+ (re)")).collect();
        scenarios.push((nothing.join("\n"), false));
        // Everything expected, one line changed in the middle.
        let mut changed = lines.clone();
        changed[25_000] = "changed".to_string();
        scenarios.push((changed.join("\n"), false));
        // Every 100th line changed, dropped or doubled, all 50,000 lines expected.
        let every = |f: &dyn Fn(usize, &String) -> Option<String>| {
            let kept: Vec<String> = lines
                .iter()
                .enumerate()
                .filter_map(|(k, l)| f(k, l))
                .collect();
            kept.join("\n")
        };
        scenarios.push((
            every(&|k, l| Some(if k % 100 == 50 { "x".into() } else { l.clone() })),
            false,
        ));
        scenarios.push((every(&|k, l| (k % 100 != 50).then(|| l.clone())), false));
        scenarios.push((
            every(&|k, l| {
                Some(if k % 100 == 50 {
                    format!("{l}\nx")
                } else {
                    l.clone()
                })
            }),
            false,
        ));
        // 100 elided lines in the reverse of their output order, between `...` lines.
        let reversed: Vec<String> = (0..100)
            .rev()
            .map(|k| format!("row {} value [..]", k * 400))
            .collect();
        scenarios.push((format!("...\n{}\n...", reversed.join("\n")), false));
        // A block of elided lines after `...`, then a line that never comes.
        scenarios.push((
            format!("...\n{}\nEND", vec!["row [..]"; 100].join("\n")),
            false,
        ));
        // Globs and multi-line regexes that match nothing.
        scenarios.push((vec!["nomatch* (glob)"; 100].join("\n"), false));
        scenarios.push((
            format!("...\n{}\n...", vec!["\\d+ (re+)"; 100].join("\n")),
            false,
        ));
        // Near misses: one expected line missing between `...` lines.
        scenarios.push((
            "...\nrow 25000 value 175000\nMISSING\n...".to_string(),
            false,
        ));
        scenarios.push((
            "...\nrow 25000 value 175000\n...\nrow 49999 value 349993".to_string(),
            true,
        ));

        for (expected, want) in scenarios {
            let patterns = parse_expected(&expected).unwrap();
            let label = expected[..40.min(expected.len())].replace('\n', "|");
            // The fastest of a few runs: the machine running the tests may be busy.
            let mut fastest = std::time::Duration::MAX;
            let runs = if cfg!(debug_assertions) { 1 } else { 3 };
            for _ in 0..runs {
                let start = std::time::Instant::now();
                let c = compare(&patterns, &actual);
                fastest = fastest.min(start.elapsed());
                assert_eq!(c.passed, want, "{label}");
            }
            eprintln!("{fastest:?} {label}");
            // Generous for debug builds; release is far below 100 ms.
            assert!(
                fastest < std::time::Duration::from_secs(5),
                "{fastest:?} for {label}"
            );
        }
    }

    #[test]
    fn random_inputs_never_panic_and_agree() {
        let mut rng = Rng::new(7);
        let alphabet: &[&str] = &[
            "a",
            "b",
            "...",
            "[..]",
            "a (re+)",
            "b (re?)",
            "* (glob*)",
            "a (no-eol)",
            "",
        ];
        for _ in 0..2_000 {
            let expected: Vec<&str> = (0..rng.below(6)).map(|_| *rng.pick(alphabet)).collect();
            let output: Vec<&str> = (0..rng.below(6))
                .map(|_| *rng.pick(&["a", "b", "c", ""]))
                .collect();
            let mut out = output.join("\n");
            if rng.below(2) == 0 {
                out.push('\n');
            }
            let patterns = parse_expected(&expected.join("\n")).unwrap();
            let actual = normalize(out.as_bytes(), false);
            let c = compare(&patterns, &actual);
            // Every actual line appears once, in order.
            let shown: Vec<&Vec<u8>> = c
                .diff
                .iter()
                .filter_map(|d| match d {
                    DiffLine::Same(l) | DiffLine::Unexpected(l) => Some(l),
                    DiffLine::Missing(_) => None,
                })
                .collect();
            assert_eq!(shown, actual.lines.iter().collect::<Vec<_>>());
            assert_eq!(c.passed, !c.diff.iter().any(DiffLine::is_change));
            assert_eq!(c.passed, brute_force_passes(&patterns, &actual, 0, 0));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng::new(1234);
        for round in 0..3_000 {
            let expected = String::from_utf8_lossy(&rng.bytes(60)).into_owned();
            let keep_ansi = round % 2 == 0;
            let actual = normalize(&rng.bytes(60), keep_ansi);
            let Ok(patterns) = parse_expected(&expected) else {
                continue;
            };
            let c = compare(&patterns, &actual);
            assert_eq!(c.passed, !c.diff.iter().any(DiffLine::is_change));
            let plain = render_diff(&c.diff, false);
            assert!(
                !plain.contains('\x1b') && !plain.contains('\r'),
                "{plain:?}"
            );
            let _ = render_diff(&c.diff, true);
            // Recording over any previous expectation gives one that matches.
            let recorded = record(&actual, Some(&patterns));
            let again = parse_expected(&recorded).unwrap_or_else(|e| panic!("{recorded:?}: {e}"));
            assert!(
                compare(&again, &actual).passed,
                "{expected:?} -> {recorded:?}"
            );
        }
    }

    /// An independent, exponential reference for tiny inputs.
    fn brute_force_passes(p: &[PatternLine], a: &Actual, i: usize, j: usize) -> bool {
        if i == p.len() {
            return j == a.lines.len();
        }
        let pat = &p[i];
        let max_take = if pat.is_multi() {
            a.lines.len() - j
        } else {
            1.min(a.lines.len() - j)
        };
        for take in pat.min_lines()..=max_take {
            let all = (j..j + take).all(|l| pat.matches(&a.lines[l], a.is_unterminated_last(l)));
            if all && brute_force_passes(p, a, i + 1, j + take) {
                return true;
            }
        }
        false
    }
}
