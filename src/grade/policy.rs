//! Grade mode's policy (section 9 of the contract): the grading notebook is the grader's and
//! trusted, within what the grader allows; what comes from a submission is not.

use crate::notebook::{BackendKind, Notebook};

/// What the grader allowed on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    /// `--allow privileged`: the grading notebook's own cells may be privileged.
    pub privileged: bool,
}

fn forbid(nb: &Notebook, line: u32, what: &str) -> String {
    format!("{}:{line}: policy forbids {what}", nb.path.display())
}

/// Checks the grading notebook before anything runs.
pub fn check_grader(nb: &Notebook, allowed: Allowed) -> Result<(), String> {
    if nb.settings.backend == Some(BackendKind::Host) {
        return Err(forbid(
            nb,
            nb.settings.line,
            "backend: host in grade mode (submissions run in containers)",
        ));
    }
    if !allowed.privileged
        && let Some(cell) = nb.cells.iter().find(|c| c.attrs.privileged)
    {
        return Err(forbid(
            nb,
            cell.line,
            "privileged cells unless the grader passes --allow privileged",
        ));
    }
    Ok(())
}

/// Checks a notebook that came with a submission (`--run-submissions`): it gets no settings
/// of its own and nothing beyond ordinary cells.
pub fn check_submission(nb: &Notebook) -> Result<(), String> {
    let s = &nb.settings;
    if !s.setup.is_empty() {
        return Err(forbid(nb, s.line, "setup steps in a submission"));
    }
    if s.network.as_deref() == Some("host") {
        return Err(forbid(nb, s.line, "network: host in a submission"));
    }
    if s.backend == Some(BackendKind::Host) {
        return Err(forbid(nb, s.line, "backend: host in a submission"));
    }
    if s.line != 0 {
        return Err(forbid(nb, s.line, "front matter in a submission"));
    }
    if let Some(cell) = nb.cells.iter().find(|c| c.attrs.privileged) {
        return Err(forbid(nb, cell.line, "privileged cells in a submission"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::{ParseOptions, parse};
    use std::path::Path;

    fn nb(text: &str) -> Notebook {
        parse(Path::new("s.md"), text.as_bytes(), &ParseOptions::default()).unwrap()
    }

    #[test]
    fn a_submission_brings_no_settings_and_no_privilege() {
        let cases = [
            ("---\nlabrun:\n  network: host\n---\n", "network: host"),
            ("---\nlabrun:\n  backend: host\n---\n", "backend: host"),
            ("---\nlabrun:\n  image: busybox\n---\n", "front matter"),
            (
                "```bash | {type: 'command', privileged: true}\nid\n```\n",
                "privileged",
            ),
        ];
        for (text, what) in cases {
            let e = check_submission(&nb(text)).unwrap_err();
            assert!(e.contains("policy forbids") && e.contains(what), "{e}");
        }
        assert!(check_submission(&nb("```console\n$ echo hi\nhi\n```\n")).is_ok());
    }

    #[test]
    fn the_grader_opts_into_privilege() {
        let grader = nb("```bash | {type: 'command', privileged: true}\nid\n```\n");
        let e = check_grader(&grader, Allowed::default()).unwrap_err();
        assert!(e.contains("--allow privileged"), "{e}");
        assert!(check_grader(&grader, Allowed { privileged: true }).is_ok());
    }
}
