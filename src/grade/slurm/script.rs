//! The sbatch script of a `--slurm` batch: one array task per shard, each a plain
//! `labrun grade --shard K/N` into a directory of its own, leaving its exit status beside it.

use std::ffi::OsString;
use std::path::Path;

/// Where a task leaves its grade book, its exit status and its log, inside the work directory.
pub fn shard_dir(work: &Path, task: u64) -> std::path::PathBuf {
    work.join(format!("shard-{task}"))
}

pub fn status_file(work: &Path, task: u64) -> std::path::PathBuf {
    work.join(format!("shard-{task}.status"))
}

pub fn log_file(work: &Path, task: u64) -> std::path::PathBuf {
    work.join(format!("shard-{task}.log"))
}

/// Quotes one word for sh: single quotes, each `'` written as `'\''`.
fn quoted(word: &OsString) -> String {
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}

/// The script: `labrun` with `flags` (the batch's own grade flags), task K of N grading shard
/// K/N. It is submitted with `--array=1-N`, so K counts from 1 as `--shard` does; the array,
/// the log files and the working directory are sbatch options (see `queue::submit`).
pub fn render(labrun: &Path, flags: &[OsString], work: &Path) -> String {
    let words: Vec<String> = std::iter::once(OsString::from(labrun))
        .chain(flags.iter().cloned())
        .map(|w| quoted(&w))
        .collect();
    let at = |p: &Path| quoted(&OsString::from(p));
    format!(
        "#!/bin/sh\n\
         # Written by `labrun grade --slurm`: shard K of N is array task K.\n\
         work={work}\n\
         {command} \\\n    --shard \"$((SLURM_ARRAY_TASK_ID))/$SLURM_ARRAY_TASK_COUNT\" \\\n    \
         --output \"$work/shard-$SLURM_ARRAY_TASK_ID\"\n\
         status=$?\n\
         echo \"$status\" >\"$work/shard-$SLURM_ARRAY_TASK_ID.status.part\"\n\
         mv \"$work/shard-$SLURM_ARRAY_TASK_ID.status.part\" \"$work/shard-$SLURM_ARRAY_TASK_ID.status\"\n\
         exit \"$status\"\n",
        work = at(work),
        command = words.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_sh() {
        assert_eq!(quoted(&"it's".into()), r"'it'\''s'");
        let s = render(
            Path::new("/bin/labrun"),
            &["grade".into(), "a b.md".into()],
            Path::new("/o/.slurm"),
        );
        assert!(s.contains("'/bin/labrun' 'grade' 'a b.md' \\\n"), "{s}");
        assert!(s.contains("--shard \"$((SLURM_ARRAY_TASK_ID))/$SLURM_ARRAY_TASK_COUNT\""));
    }
}
