//! `labrun grade` end to end: real submissions (directories, archives, notebooks) graded in
//! real containers, hostile ones included, and the reports it writes checked as files.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::Lab;
use serde_json::Value;

const GRADER: &str = r#"---
labrun:
  timeout: 5s
  limits: { memory: 128MiB, pids: 64, output: 64KiB }
---

# Word count

```console
$ test -x count.sh && echo present
present
```

```bash | {type: 'command', points: 2, hint: 'count words, not lines', expect: '3'}
echo "one two three" | ./count.sh
```

```console | {partial: true, points: 2}
$ printf '' | ./count.sh
0
$ echo "  spaced   out  " | ./count.sh
2
```

```console | {hidden: true}
$ printf 'a\nb c\n' | ./count.sh
3
```
"#;

const GOOD: &str = "#!/bin/sh\nwc -w | tr -d ' '\n";
const LINES: &str = "#!/bin/sh\nwc -l | tr -d ' '\n";

fn submit_dir(lab: &Lab, name: &str, script: &str) {
    let p = lab.path(&format!("subs/{name}/count.sh"));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, script).unwrap();
    set_mode(&p, 0o755);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A .tar.gz whose entries are written raw, so names like `../x` get in as a student's
/// archive could have them.
fn tar_gz(path: &Path, entries: &[(&str, tar::EntryType, &[u8], &str)]) {
    let file = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_old();
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

fn zip_file(path: &Path, files: &[(&str, &str)], symlinks: &[(&str, &str)]) {
    let mut w = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    for (name, text) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    for (name, target) in symlinks {
        w.add_symlink(*name, *target, opts).unwrap();
    }
    w.finish().unwrap();
}

/// A lab with this grading notebook and one good submission, ada.
fn lab_with(grader: &str) -> Lab {
    let lab = Lab::new();
    lab.write("grading.md", grader);
    submit_dir(&lab, "ada", GOOD);
    lab
}

fn book(lab: &Lab, out: &str) -> Value {
    serde_json::from_str(&lab.read(&format!("{out}/grades.json"))).unwrap()
}

fn entry<'a>(book: &'a Value, name: &str) -> &'a Value {
    book["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["submission"] == name)
        .unwrap_or_else(|| panic!("no entry for {name} in {book:#}"))
}

fn grade(lab: &Lab, extra: &[&str]) -> common::Ran {
    let mut args = vec![
        "grade",
        "grading.md",
        "--submissions",
        "subs",
        "--output",
        "out",
        "-j",
        "2",
    ];
    args.extend_from_slice(extra);
    lab.run(&args)
}

#[test]
fn every_kind_of_submission_is_graded_by_points() {
    let lab = lab_with(GRADER);
    submit_dir(&lab, "bob", LINES);
    tar_gz(
        &lab.path("subs/cyd.tar.gz"),
        &[("count.sh", tar::EntryType::Regular, GOOD.as_bytes(), "")],
    );
    zip_file(&lab.path("subs/dee.zip"), &[("count.sh", GOOD)], &[]);
    let ran = grade(&lab, &[]);
    ran.status(0);
    let b = book(&lab, "out");
    assert_eq!(b["max_score"], 6.0);
    for full in ["ada", "cyd", "dee"] {
        assert_eq!(entry(&b, full)["score"], 6.0, "{full}: {b:#}");
    }
    // bob counts lines: the presence check passes, one of two partial steps (the empty
    // input) passes, so 1 + 0 + 1 + 0.
    let bob = entry(&b, "bob");
    assert_eq!(bob["score"], 2.0, "{bob:#}");
    assert_eq!(bob["cells"][2]["status"], "partial");
    let csv = lab.read("out/grades.csv");
    assert!(
        csv.starts_with("submission,status,score,max_score,word-count-1,"),
        "{csv}"
    );
    assert!(csv.contains("bob,graded,2,6,1,0,1,0,"), "{csv}");
    // The student's view: the hint and the diff, never the hidden cell's expected output.
    let results = lab.read("out/submissions/bob/results.json");
    assert!(results.contains("count words, not lines"), "{results}");
    assert!(results.contains("a hidden test failed"), "{results}");
    for report in ["results.json", "report.html", "junit.xml", "report.tap"] {
        let text = lab.read(&format!("out/submissions/bob/{report}"));
        assert!(
            !text.contains("a\\nb c"),
            "{report} shows the hidden cell:\n{text}"
        );
    }
    let html = lab.read("out/submissions/bob/report.html");
    assert!(html.contains("<h1>Word count</h1>"), "{html}");
    assert!(html.contains("class=\"cell failed\""), "{html}");
    assert!(html.contains("<span class=\"del\">- 3</span>"), "{html}");
}

#[test]
fn the_submission_is_read_only_at_its_mount_and_copied_into_the_lab() {
    let lab = Lab::new();
    lab.write(
        "grading.md",
        "```console\n$ cat /lab/.submission/answer.txt answer.txt\n42\n42\n$ (echo x > /lab/.submission/answer.txt) 2>/dev/null || echo refused\nrefused\n$ echo $LABRUN_SUBMISSION_DIR\n/lab/.submission\n$ ls -A /lab/.submission\nanswer.txt\n$ wc -c < /lab/.notebook/grading.md\n0\n```\n",
    );
    lab.write("subs/ada/answer.txt", "42\n");
    lab.write("subs/bob/answer.txt", "42\n");
    grade(&lab, &[]).status(0);
    let b = book(&lab, "out");
    assert_eq!(entry(&b, "ada")["score"], 1.0, "{b:#}");
    assert_eq!(entry(&b, "bob")["score"], 1.0, "{b:#}");
}

#[test]
fn a_bad_archive_is_an_error_of_its_own_and_the_batch_goes_on() {
    let lab = lab_with(GRADER);
    let regular = tar::EntryType::Regular;
    let cases: &[(&str, &str)] = &[
        ("dotdot", "entry '../../escaped' has '..'"),
        ("absolute", "entry '/tmp/abs' is an absolute path"),
        ("linkout", "entry 'l' is a symlink out of the submission"),
        ("hardlink", "entry 'h' is a hard link"),
        ("huge", "entry 'big' is larger than"),
        ("zipslip", "entry 'x/../../up' has '..'"),
        ("ziplink", "entry 'etc' is a symlink out of the submission"),
        ("garbage", "is not a readable zip archive"),
    ];
    tar_gz(
        &lab.path("subs/dotdot.tar.gz"),
        &[("../../escaped", regular, b"x", "")],
    );
    tar_gz(
        &lab.path("subs/absolute.tar.gz"),
        &[("/tmp/abs", regular, b"x", "")],
    );
    tar_gz(
        &lab.path("subs/linkout.tar.gz"),
        &[("l", tar::EntryType::Symlink, b"", "/etc")],
    );
    tar_gz(
        &lab.path("subs/hardlink.tar.gz"),
        &[("h", tar::EntryType::Link, b"", "/etc/passwd")],
    );
    let big = vec![0u8; (64 << 20) + 1];
    tar_gz(&lab.path("subs/huge.tar.gz"), &[("big", regular, &big, "")]);
    zip_file(&lab.path("subs/zipslip.zip"), &[("x/../../up", "x")], &[]);
    zip_file(&lab.path("subs/ziplink.zip"), &[], &[("etc", "../../etc")]);
    lab.write("subs/garbage.zip", "not a zip");
    let ran = grade(&lab, &[]);
    ran.status(1);
    let b = book(&lab, "out");
    assert_eq!(entry(&b, "ada")["score"], 6.0);
    for (name, why) in cases {
        let e = entry(&b, name);
        assert_eq!(e["status"], "error", "{e:#}");
        let message = e["error"].as_str().unwrap();
        assert!(message.contains(why), "{name}: {message}");
        assert!(
            message.contains(&format!("subs/{name}.")),
            "{name}: {message}"
        );
        ran.stderr_has(&format!("submission '{name}'"));
    }
    assert!(!lab.path("escaped").exists() && !Path::new("/tmp/abs").exists());
}

#[test]
fn hostile_submissions_cost_only_their_own_slot() {
    let lab = Lab::new();
    lab.write(
        "grading.md",
        "---\nlabrun:\n  timeout: 20s\n  limits: { memory: 64MiB, pids: 32, output: 16KiB }\n---\n\n```console\n$ sh ./run.sh >/dev/null 2>&1; echo done\ndone\n```\n\n```console\n$ echo still here\nstill here\n```\n",
    );
    let hostile = [
        ("forkbomb", "f() { f | f & }; f; sleep 3\n"),
        ("membomb", "x=a; while true; do x=$x$x; done\n"),
        ("flood", "yes flood | head -c 100000000 >&2; exec yes\n"),
        ("sleeper", "sleep 100000\n"),
        ("good", "true\n"),
    ];
    for (name, script) in hostile {
        lab.write(&format!("subs/{name}/run.sh"), script);
    }
    let started = std::time::Instant::now();
    let ran = grade(&lab, &["--submission-timeout", "4s", "--format", "none"]);
    ran.status(0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the batch took {:?}",
        started.elapsed()
    );
    let b = book(&lab, "out");
    assert_eq!(entry(&b, "good")["score"], 2.0, "{b:#}");
    for (name, _) in &hostile[..4] {
        let e = entry(&b, name);
        assert_eq!(e["status"], "graded", "{name}: {e:#}");
    }
    // The one that never ends is stopped at its own deadline, and says so.
    let sleeper = entry(&b, "sleeper");
    assert_eq!(sleeper["score"], 0.0, "{sleeper:#}");
    assert!(
        sleeper["note"]
            .as_str()
            .unwrap_or("")
            .contains("--submission-timeout of 4.0 s reached"),
        "{sleeper:#}"
    );
}

#[test]
fn policy_refuses_what_the_grader_did_not_allow() {
    let lab = lab_with("```bash | {type: 'command', privileged: true}\ntrue\n```\n");
    grade(&lab, &[])
        .status(2)
        .stderr_has("policy forbids privileged cells unless the grader passes --allow privileged");
    grade(&lab, &["--allow", "privileged"]).status(0);
    lab.write("grading.md", GRADER);
    grade(&lab, &["--backend", "host"]).status(2);
    // Nothing leaves a submission's environment: a copy out is refused before the batch.
    let lab = lab_with("```bash | {type: 'copy'}\nCOPY /lab/count.sh out/count.sh\n```\n");
    grade(&lab, &[])
        .status(2)
        .stderr_has("copying out of the environment is refused when grading");
}

#[test]
fn submissions_run_as_their_own_labs_only_within_the_policy() {
    let lab = Lab::new();
    lab.write("grading.md", "---\nlabrun:\n  timeout: 5s\n---\n");
    lab.write("subs/ada.md", "```console\n$ echo hi\nhi\n```\n");
    lab.write(
        "subs/eve.md",
        "---\nlabrun:\n  network: host\n---\n\n```console\n$ echo hi\nhi\n```\n",
    );
    lab.write(
        "subs/mal.md",
        "```bash | {type: 'command', privileged: true}\nmount -t tmpfs x /mnt\n```\n",
    );
    let ran = grade(&lab, &["--run-submissions"]);
    ran.status(1);
    let b = book(&lab, "out");
    assert_eq!(entry(&b, "ada")["score"], 1.0, "{b:#}");
    for name in ["eve", "mal"] {
        let e = entry(&b, name);
        assert!(
            e["error"].as_str().unwrap().contains("policy forbids"),
            "{e:#}"
        );
    }
}

#[test]
fn an_environment_that_cannot_be_built_aborts_the_batch() {
    let lab =
        lab_with("---\nlabrun:\n  image: ./missing-rootfs.tar\n---\n\n```console\n$ true\n```\n");
    grade(&lab, &[])
        .status(3)
        .stderr_has("the grading environment could not be built");
    assert!(!lab.path("out/grades.json").exists());
}

#[test]
fn shards_merge_into_the_unsharded_grade_book() {
    let lab = Lab::new();
    lab.write(
        "grading.md",
        "```console | {points: 3}\n$ cat answer\nyes\n```\n",
    );
    for i in 0..9 {
        let answer = if i % 3 == 0 { "no" } else { "yes" };
        lab.write(&format!("subs/s{i}/answer"), &format!("{answer}\n"));
    }
    grade(&lab, &["--format", "none"]).status(0);
    let mut shards = Vec::new();
    for k in 1..=3 {
        let out = format!("shard{k}");
        let shard = format!("{k}/3");
        lab.run(&[
            "grade",
            "grading.md",
            "--submissions",
            "subs",
            "--output",
            &out,
            "--shard",
            &shard,
            "--format",
            "none",
        ])
        .status(0);
        assert_eq!(book(&lab, &out)["shard"], shard.as_str());
        shards.push(format!("{out}/grades.json"));
    }
    let mut args = vec!["merge", "--output", "merged"];
    args.extend(shards.iter().map(String::as_str));
    lab.run(&args).status(0);
    let strip = |mut b: Value| {
        for e in b["submissions"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("duration_ms");
        }
        b
    };
    let whole = strip(book(&lab, "out"));
    assert_eq!(whole["submissions"].as_array().unwrap().len(), 9);
    assert_eq!(strip(book(&lab, "merged")), whole);
    assert_eq!(lab.read("merged/grades.csv"), lab.read("out/grades.csv"));
    // A shard's share is stable: a new submission does not move the others.
    let before = fs::read_to_string(lab.path("shard1/grades.json")).unwrap();
    lab.write("subs/zz-late/answer", "yes\n");
    lab.run(&[
        "grade",
        "grading.md",
        "--submissions",
        "subs",
        "--output",
        "again",
        "--shard",
        "1/3",
        "--format",
        "none",
    ])
    .status(0);
    let names = |b: &Value| -> Vec<String> {
        b["submissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["submission"].as_str().unwrap().to_string())
            .filter(|n| n != "zz-late")
            .collect()
    };
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(names(&book(&lab, "again")), names(&before));
    // Shards of one run only.
    lab.write("other.md", "```console\n$ true\n```\n");
    lab.run(&[
        "grade",
        "other.md",
        "--submissions",
        "subs",
        "--output",
        "other",
        "--format",
        "none",
    ])
    .status(0);
    lab.run(&[
        "merge",
        "--output",
        "bad",
        "shard1/grades.json",
        "other/grades.json",
    ])
    .status(2)
    .stderr_has("grade different notebooks");
}

fn xmllint(lab: &Lab, file: &str) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit.xsd");
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(lab.path(file))
        .output()
        .expect("xmllint (scripts/setup.sh installs libxml2-utils)");
    assert!(
        out.status.success(),
        "{file} is not valid JUnit:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.read(file)
    );
}

#[test]
fn junit_reports_validate_against_the_schema() {
    let lab = Lab::new();
    lab.write("grading.md", GRADER);
    submit_dir(&lab, "bob", LINES);
    grade(&lab, &["--format", "junit"]).status(0);
    xmllint(&lab, "out/submissions/bob/junit.xml");
    assert!(!lab.path("out/submissions/bob/report.html").exists());
    // A plain run, with output XML cannot hold as it is (an escape character), and a skip.
    lab.write(
        "plain.md",
        "```console\n$ printf 'a\\033[1mb <&>\\n'\nnope\n```\n\n```console | {skip: true}\n$ true\n```\n",
    );
    lab.run(&["--format", "junit", "--output", "plain.xml", "plain.md"])
        .status(1);
    xmllint(&lab, "plain.xml");
    let xml = lab.read("plain.xml");
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<skipped"), "{xml}");
}

#[test]
fn plain_runs_write_every_format() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "# Hi\n\n```console\n$ echo hi\nhi\n```\n\n```console | {points: 2, hint: 'say hello'}\n$ echo bye\nhello\n```\n",
    );
    lab.run(&[
        "--format",
        "tap=r.tap",
        "--format",
        "html=r.html",
        "--format",
        "gradescope=r.json",
        "--format",
        "csv=r.csv",
        "nb.md",
    ])
    .status(1);
    let tap = lab.read("r.tap");
    assert!(
        tap.starts_with("TAP version 14\n1..2\nok 1 - nb.md hi-1\nnot ok 2 - nb.md hi-2\n"),
        "{tap}"
    );
    assert!(tap.contains("    hint: say hello"), "{tap}");
    let gs: Value = serde_json::from_str(&lab.read("r.json")).unwrap();
    assert_eq!(gs["score"], 1.0);
    assert_eq!(gs["max_score"], 3.0);
    assert_eq!(gs["tests"][1]["status"], "failed");
    let csv = lab.read("r.csv");
    assert!(csv.contains("nb.md,hi-2,"), "{csv}");
    let html = lab.read("r.html");
    assert!(
        html.contains("<h1>Hi</h1>") && html.contains("Hint: say hello"),
        "{html}"
    );
    lab.run(&["--format", "tap", "--output", "only.tap", "nb.md"])
        .status(1);
    assert!(lab.read("only.tap").starts_with("TAP version 14"));
    lab.run(&["--format", "xml", "nb.md"]).status(2);
}

#[test]
fn a_terminal_shows_progress_with_an_eta_and_a_pipe_does_not() {
    let lab = Lab::new();
    lab.write("grading.md", "```console\n$ sleep 0.2\n```\n");
    for i in 0..4 {
        fs::create_dir_all(lab.path(&format!("subs/s{i}"))).unwrap();
    }
    // util-linux's `script` gives labrun a terminal (scripts/setup.sh installs util-linux).
    let line = format!(
        "{} grade grading.md --submissions subs --output out -j 2",
        common::labrun_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(lab.dir.path())
        .output()
        .expect("script (util-linux)");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("4/4 submissions"), "{seen}");
    assert!(seen.contains("ETA"), "{seen}");
    let piped = grade(&lab, &[]);
    piped.status(0);
    assert!(!piped.stderr.contains("ETA"), "{}", piped.stderr);
}

/// labrun's own peak resident memory (VmHWM) while grading `n` empty submissions.
fn peak_rss_kib(lab: &Lab, n: usize) -> u64 {
    let subs = format!("subs{n}");
    for i in 0..n {
        fs::create_dir_all(lab.path(&format!("{subs}/s{i:04}"))).unwrap();
    }
    let out = format!("out{n}");
    let mut child = lab
        .command(
            &[
                "grade",
                "grading.md",
                "--submissions",
                &subs,
                "--output",
                &out,
                "-j",
                "2",
            ],
            &[],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        let status = fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let book = book(lab, &out);
    assert_eq!(book["submissions"].as_array().unwrap().len(), n);
    peak
}

#[test]
fn memory_stays_bounded_whatever_the_number_of_submissions() {
    let lab = Lab::new();
    lab.write("grading.md", "```console\n$ echo ok\nok\n```\n");
    let few = peak_rss_kib(&lab, 10);
    let many = peak_rss_kib(&lab, 150);
    assert!(many < 50 * 1024, "peak RSS {many} KiB for 150 submissions");
    assert!(
        many < few + 2048,
        "peak RSS grew from {few} KiB (10 submissions) to {many} KiB (150)"
    );
}
