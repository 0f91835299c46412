//! The threat model's "Files and paths" cases, and fresh state between runs: `file` cells
//! whose path climbs out or is absolute, symlinks one cell plants for the next, the
//! notebook's read-only mount, and what a run leaves for the next (nothing). Each test looks
//! at the host's side afterwards.

mod common;

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use common::{Lab, Report, is_root, probe_notebook, unique};

/// What can be seen of a host path from here: its size and mtime, or why not.
fn host_state(p: &Path) -> Result<(u64, SystemTime), std::io::ErrorKind> {
    fs::symlink_metadata(p)
        .map(|m| (m.len(), m.modified().unwrap()))
        .map_err(|e| e.kind())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A `file` cell writing `content` to `path`.
fn file_cell(id: &str, path: &str, content: &str) -> String {
    format!("```bash | {{type: 'file', id: '{id}', path: '{path}'}}\n{content}\n```\n\n")
}

fn command_cell(id: &str, script: &str) -> String {
    format!("```bash | {{type: 'command', id: '{id}', exit: any}}\n{script}\n```\n\n")
}

/// A host directory the container sees (read-only, under its own writable layer) when the
/// lab can live outside /tmp: the most tempting target, since the path exists on both sides.
/// It holds one file, `seen.txt`.
fn visible_target() -> Lab {
    let target = Lab::new_visible();
    target.write("seen.txt", "host file");
    target
}

#[track_caller]
fn assert_target_untouched(target: &Lab, report: &Report) {
    assert_eq!(
        entries(target.dir.path()),
        ["seen.txt"],
        "the host directory {} was written:\n{}",
        target.dir.path().display(),
        report.text
    );
    assert_eq!(target.read("seen.txt"), "host file");
}

#[test]
fn file_cells_with_climbing_or_absolute_paths_stay_inside() {
    let lab = Lab::new_visible();
    let target = visible_target();
    let target_dir = target.dir.path().to_str().unwrap().to_string();
    let name = unique("pwned");
    let tmp_pwned = format!("/tmp/{name}");
    let climbs = "../".repeat(12);
    let mut nb = String::from("# Files\n\n");
    nb += &file_cell("climb-tmp", &format!("{climbs}tmp/{name}"), "owned");
    nb += &file_cell("abs-tmp", &format!("{tmp_pwned}-abs"), "owned");
    nb += &file_cell("abs-host", &format!("{target_dir}/{name}"), "owned");
    nb += &file_cell(
        "climb-host",
        &format!(
            "{climbs}{}/{name}-climb",
            target_dir.trim_start_matches('/')
        ),
        "owned",
    );
    nb += &file_cell("etc", &format!("/etc/{name}"), "owned");
    nb += &command_cell("after", "echo alive=yes");
    lab.write("nb.md", &nb);
    let (_, report) = lab.report("nb.md", &[]);
    report.assert_status("after", "passed");

    for host in [
        tmp_pwned.clone(),
        format!("{tmp_pwned}-abs"),
        format!("/etc/{name}"),
    ] {
        assert!(
            !Path::new(&host).exists(),
            "{host} was written on the host:\n{}",
            report.text
        );
    }
    assert_target_untouched(&target, &report);
    // The lab directory itself got nothing but the notebook.
    assert_eq!(entries(lab.dir.path()), ["nb.md"], "{}", report.text);
}

#[test]
fn a_planted_symlink_does_not_lead_the_next_cell_to_the_host() {
    let ssh_keys = Path::new("/root/.ssh/authorized_keys");
    let ssh_before = host_state(ssh_keys);
    let ssh_dir_before = host_state(Path::new("/root/.ssh"));
    let lab = Lab::new_visible();
    let target = visible_target();
    let target_dir = target.dir.path().to_str().unwrap().to_string();
    let etc_name = unique("planted");

    let mut nb = String::from("# Symlinks\n\n");
    nb += &command_cell(
        "plant",
        &format!(
            "mkdir -p /root/.ssh 2>/dev/null; ln -s /root/.ssh x; ln -s {target_dir} y; ln -s /etc z
echo seen=$(cat y/seen.txt)"
        ),
    );
    nb += &command_cell(
        "follow",
        "mkdir -p x; echo k > x/authorized_keys; echo k > y/planted; mkdir -p y/sub",
    );
    nb += &file_cell("file-x", "x/authorized_keys2", "k2");
    nb += &file_cell("file-y", "y/planted-by-file", "k3");
    nb += &file_cell("file-z", &format!("z/{etc_name}"), "k4");
    nb += &command_cell(
        "inside",
        "echo keys=$(cat /root/.ssh/authorized_keys 2>/dev/null)",
    );
    lab.write("nb.md", &nb);
    let (_, report) = lab.report("nb.md", &[]);
    report.assert_status("inside", "passed");
    if is_root() {
        // As root the whole root is writable: the planted link is followed inside the
        // container, so the key lands in the container's own /root/.ssh.
        assert_eq!(report.values("inside").get("keys"), "k", "{}", report.text);
    }

    assert_eq!(
        host_state(ssh_keys),
        ssh_before,
        "the host's {} changed:\n{}",
        ssh_keys.display(),
        report.text
    );
    assert_eq!(
        host_state(Path::new("/root/.ssh")),
        ssh_dir_before,
        "{}",
        report.text
    );
    assert_target_untouched(&target, &report);
    if !target_dir.starts_with("/tmp") {
        // The link's target is there inside: the write had somewhere to go.
        assert_eq!(
            report.values("plant").get("seen"),
            "host file",
            "{}",
            report.text
        );
    }
    assert!(
        !Path::new("/etc").join(&etc_name).exists(),
        "/etc/{etc_name} on the host:\n{}",
        report.text
    );
}

#[test]
fn the_notebooks_directory_is_read_only_inside() {
    let lab = Lab::new_visible();
    lab.write("fixture.txt", "fixture\n");
    let mut nb = probe_notebook(
        "",
        &[(
            "p",
            "touch /lab/.notebook/evil 2>/dev/null; echo touch_rc=$?
( echo more >> /lab/.notebook/nb.md ) 2>/dev/null; echo append_rc=$?
rm -f /lab/.notebook/fixture.txt 2>/dev/null; echo rm_rc=$?
chmod 777 /lab/.notebook 2>/dev/null; echo chmod_rc=$?",
        )],
    );
    nb += &file_cell("file", "/lab/.notebook/evil-file", "owned");
    nb += &file_cell("climb", ".notebook/../.notebook/evil-climb", "owned");
    lab.write("nb.md", &nb);
    let mode_before = fs::metadata(lab.dir.path()).unwrap().permissions();
    let (_, report) = lab.report("nb.md", &[]);
    let v = report.values("p");
    for key in ["touch_rc", "append_rc", "rm_rc", "chmod_rc"] {
        assert_ne!(v.get(key), "0", "{key}: succeeded\n{}", report.text);
    }
    assert_eq!(
        entries(lab.dir.path()),
        ["fixture.txt", "nb.md"],
        "{}",
        report.text
    );
    assert_eq!(lab.read("nb.md"), nb, "the notebook changed");
    assert_eq!(
        fs::metadata(lab.dir.path()).unwrap().permissions(),
        mode_before
    );
}

/// Runs the same notebook twice: each run looks for the marker, then writes it.
fn assert_fresh_between_runs(image: Option<&str>, dir: &str) {
    let lab = Lab::new();
    let marker = format!("{dir}/{}", unique("marker"));
    let settings = image.map(|i| format!("image: {i}")).unwrap_or_default();
    lab.write(
        "nb.md",
        &probe_notebook(
            &settings,
            &[(
                "p",
                &format!(
                    "if [ -e {marker} ]; then echo seen=yes; else echo seen=no; fi
echo run > {marker}; echo wrote=$?"
                ),
            )],
        ),
    );
    let runs: Vec<Report> = (0..2).map(|_| lab.report("nb.md", &[]).1).collect();
    for (i, report) in runs.iter().enumerate() {
        let v = report.values("p");
        assert_eq!(v.get("seen"), "no", "run {}:\n{}", i + 1, report.text);
        assert_eq!(v.get("wrote"), "0", "run {}:\n{}", i + 1, report.text);
    }
    assert!(!Path::new(&marker).exists(), "{marker} on the host");
}

#[test]
fn nothing_a_run_writes_survives_it() {
    // Rootless, the `host` image's system directories belong to users the container cannot
    // map: only /lab, /root, /home, /tmp and /var/tmp are writable there.
    assert_fresh_between_runs(None, if is_root() { "/etc" } else { "/root" });
    assert_fresh_between_runs(None, "/tmp");
    // An image labrun unpacks itself is writable everywhere, rootless too.
    assert_fresh_between_runs(Some("busybox"), "/etc");
}

/// A root of busybox with the given links (`name`, `target`) at its top, in `dir`.
fn root_with_links(dir: &Path, links: &[(&str, &Path)]) {
    common::busybox_tree(dir, &["sh", "echo", "cat"]);
    for (name, target) in links {
        let at = dir.join(name);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    }
}

#[test]
fn an_images_symlinks_do_not_lead_the_build_of_its_root_to_the_host() {
    // Before pivot_root, an absolute link in the image resolves against the machine's root:
    // /run -> <host dir> made labrun create <host dir>/labrun on the machine. Each place labrun
    // builds on is tried with a link there to a host directory, which must stay empty.
    let cases: [(&str, &str, &str); 6] = [
        ("run", "", "/run"),
        ("lab", "", "/lab"),
        ("dev", "", "/dev"),
        ("proc", "", "/proc"),
        ("tmp", "", "/tmp"),
        ("srv", "  workdir: /srv/app\n", "/srv"),
    ];
    for (link, settings, inside) in cases {
        let lab = Lab::new();
        let host = tempfile::tempdir().unwrap();
        let image = lab.path("image");
        root_with_links(&image, &[(link, host.path())]);
        lab.write(
            "nb.md",
            &format!(
                "---\nlabrun:\n  image: {}\n{settings}---\n\n```console\n$ echo hi\nhi\n```\n",
                image.display()
            ),
        );
        let ran = lab.run(&["nb.md"]);
        ran.status(3)
            .stderr_has("the image has a symbolic link on this path")
            .stderr_has(&format!(" {inside}"));
        assert_eq!(
            entries(host.path()),
            Vec::<String>::new(),
            "{link}: {}",
            ran.stderr
        );
    }
    // A link elsewhere in the image is the image's business.
    let lab = Lab::new();
    let image = lab.path("image");
    root_with_links(&image, &[("opt/elsewhere", Path::new("/etc"))]);
    lab.write(
        "nb.md",
        &format!(
            "---\nlabrun:\n  image: {}\n---\n\n```console\n$ echo hi\nhi\n```\n",
            image.display()
        ),
    );
    lab.run(&["nb.md"]).status(0);
}
