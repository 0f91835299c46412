//! Several machines in one lab (section 6): each target a fresh container, joined in a private
//! network that exists only for the run. Real containers, a real bridge and veth pairs.
//!
//! The lab network needs root; run rootless (scripts/rootless-tests.sh runs this file as an
//! ordinary user too), every test checks the clear error instead.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::time::Duration;

use common::{Lab, Report, is_root, wait_until};

const TWO_MACHINES: &str =
    "---\nlabrun:\n  targets:\n    web: {}\n    client: {}\n---\n# Two machines\n\n";

/// A cell on `target` (id `id`) that may fail: its output is what the test looks at.
fn cell(target: &str, id: &str, script: &str) -> String {
    format!(
        "```bash | {{type: 'command', id: '{id}', target: {target}, exit: any}}\n{script}\n```\n\n"
    )
}

/// Runs a two-machine notebook with these cells; rootless, asserts the clear error and
/// returns `None`.
fn run_two(lab: &Lab, cells: &[String], env: &[(&str, &str)]) -> Option<Report> {
    let text = format!("{TWO_MACHINES}{}", cells.concat());
    lab.write("nb.md", &text);
    let (ran, report) = lab.report("nb.md", env);
    if !is_root() {
        assert_eq!(ran.status, 3, "{}", report.text);
        assert!(
            report.text.contains("needs root for its private network"),
            "{}",
            report.text
        );
        return None;
    }
    assert!(ran.status == 0 || ran.status == 1, "{}", report.text);
    Some(report)
}

/// A web server on `web` serving `text` on port 8080, in the background.
fn serve(text: &str) -> String {
    cell(
        "web",
        "serve",
        &format!(
            "mkdir -p /srv && printf '%s\\n' \"{text}\" > /srv/index.html\n\
             (cd /srv && exec python3 -m http.server 8080 >/dev/null 2>&1 &)\n\
             for i in $(seq 100); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080), 1)' 2>/dev/null && break; sleep 0.05; done"
        ),
    )
}

const FETCH: &str = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://web:8080/\", timeout=5).read().decode().strip())'";

#[test]
fn a_client_fetches_a_page_from_the_web_target_by_name() {
    let lab = Lab::new();
    let cells = [
        serve("hello from web"),
        cell("client", "fetch", FETCH),
        cell(
            "client",
            "names",
            "hostname; getent hosts web client; ip -4 -o addr show eth0 | awk '{print $4}'",
        ),
        cell(
            "web",
            "who",
            "hostname; ip -4 -o addr show eth0 | awk '{print $4}'",
        ),
    ];
    let Some(report) = run_two(&lab, &cells, &[]) else {
        return;
    };
    assert_eq!(
        report.output("fetch"),
        "hello from web\n",
        "{}",
        report.text
    );
    assert_eq!(
        report.output("names"),
        "client\n10.89.0.2       web\n10.89.0.3       client\n10.89.0.3/24\n",
        "{}",
        report.text
    );
    assert_eq!(
        report.output("who"),
        "web\n10.89.0.2/24\n",
        "{}",
        report.text
    );
}

/// The machine's own IPv4 addresses (not loopback).
fn host_addresses() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next())
        .filter(|a| !a.starts_with("127."))
        .map(String::from)
        .collect()
}

#[test]
fn a_target_reaches_the_other_targets_and_nothing_else() {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let addresses = host_addresses();
    assert!(
        !addresses.is_empty(),
        "this machine has no IPv4 address besides loopback"
    );
    let mut probes: Vec<String> = addresses.iter().map(|a| format!("{a}:{port}")).collect();
    // The bridge's side has no address, so there is no gateway to try; the public
    // addresses stand for the world.
    probes.extend([
        "10.89.0.1:80".into(),
        "1.1.1.1:53".into(),
        "8.8.8.8:443".into(),
    ]);
    let probe = format!(
        "python3 - <<'PY'\nimport socket\nfor target in {probes:?}:\n    host, port = target.rsplit(':', 1)\n    try:\n        socket.create_connection((host, int(port)), 2).close()\n        print(target, 'connected')\n    except OSError as e:\n        print(target, 'refused' if isinstance(e, ConnectionRefusedError) else 'unreachable')\nPY"
    );
    let lab = Lab::new();
    let cells = [
        serve("up"),
        cell("client", "fetch", FETCH),
        cell("client", "probe", &probe),
    ];
    let Some(report) = run_two(&lab, &cells, &[]) else {
        return;
    };
    assert_eq!(report.output("fetch"), "up\n", "{}", report.text);
    let out = report.output("probe");
    assert_eq!(out.lines().count(), probes.len(), "{}", report.text);
    for line in out.lines() {
        assert!(line.ends_with(" unreachable"), "{line}\n{}", report.text);
    }
    drop(listener);
}

#[test]
fn two_runs_of_the_same_lab_see_only_their_own_machines() {
    if !is_root() {
        // Rootless: the clear error, as everywhere in this file.
        run_two(&Lab::new(), &[serve("x")], &[]);
        return;
    }
    let labs = [Lab::new(), Lab::new()];
    let cells = [
        serve("$TOKEN"),
        // Both runs are up at once: each waits until the other has started serving too.
        cell("client", "fetch", &format!("sleep 1; {FETCH}")),
    ];
    let text = format!("{TWO_MACHINES}{}", cells.concat());
    let children: Vec<_> = labs
        .iter()
        .enumerate()
        .map(|(i, lab)| {
            lab.write("nb.md", &text);
            let token = format!("TOKEN=run-{i}");
            lab.spawn(&["--format", "json", "--env", &token, "nb.md"], &[])
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let report = Report::of(&out.into());
        assert_eq!(
            report.output("fetch"),
            format!("run-{i}\n"),
            "{}",
            report.text
        );
    }
}

/// Network namespaces that some process on the machine is in or holds open.
fn net_namespaces_in_use() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for proc_entry in fs::read_dir("/proc").unwrap().flatten() {
        let dir = proc_entry.path();
        if let Ok(ns) = fs::read_link(dir.join("ns/net")) {
            found.insert(ns.to_string_lossy().into_owned());
        }
        for fd in fs::read_dir(dir.join("fd")).into_iter().flatten().flatten() {
            if let Ok(link) = fs::read_link(fd.path())
                && link.to_string_lossy().starts_with("net:[")
            {
                found.insert(link.to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn a_killed_run_leaves_no_network_behind() {
    let lab = Lab::new();
    let cells = [
        cell("web", "ns", "readlink /proc/self/ns/net"),
        cell("client", "wait", "sleep 600"),
    ];
    lab.write("nb.md", &format!("{TWO_MACHINES}{}", cells.concat()));
    let mut child = lab.spawn(&["nb.md"], &[]);
    let labrun = child.id();
    if !is_root() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        return;
    }
    // The run's namespaces: the ones labrun holds open once the client sleeps.
    let mut held = BTreeSet::new();
    let up = wait_until(30.0, || {
        held = fs::read_dir(format!("/proc/{labrun}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .map(|l| l.to_string_lossy().into_owned())
            .filter(|l| l.starts_with("net:["))
            .collect();
        // the hub and both machines
        held.len() >= 3
    });
    assert!(up, "labrun never held the lab's namespaces: {held:?}");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_until(10.0, || net_namespaces_in_use().is_disjoint(&held));
    assert!(
        gone,
        "still in use after the run was killed: {:?}",
        net_namespaces_in_use()
            .intersection(&held)
            .collect::<Vec<_>>()
    );
}

#[test]
fn copy_cells_move_files_between_machines_and_out_only_into_the_artifacts() {
    let lab = Lab::new();
    lab.write("files/site.conf", "server_name web;\n");
    let copy = |id: &str, target: &str, body: &str| {
        format!("```bash | {{type: 'copy', id: '{id}', target: {target}}}\n{body}\n```\n\n")
    };
    let cells = [
        copy("in", "web", "COPY files/site.conf /etc/site.conf"),
        cell(
            "web",
            "build",
            "cat /etc/site.conf; mkdir -p /srv/out/sub && echo built > /srv/out/sub/result.txt && chmod 4755 /srv/out/sub/result.txt && ln -s /etc/shadow /srv/out/leak && mkfifo /srv/out/pipe",
        ),
        copy("across", "web", "COPY /srv/out client:/srv/site"),
        cell(
            "client",
            "check",
            "cat /srv/site/sub/result.txt; readlink /srv/site/leak",
        ),
        copy("out", "client", "COPY /srv/site report"),
    ];
    let art = lab.path("art");
    let art_arg = art.to_str().unwrap().to_string();
    let text = format!("{TWO_MACHINES}{}", cells.concat());
    lab.write("nb.md", &text);
    let (ran, report) = lab.report("nb.md", &[]);
    if !is_root() {
        assert_eq!(
            ran.status, 2,
            "without --artifacts the plan is refused first: {}",
            report.text
        );
        return;
    }
    // Copying out without --artifacts is refused before anything runs.
    assert_eq!(ran.status, 2, "{}", report.text);
    assert!(
        ran.stderr.contains("needs --artifacts DIR"),
        "{}",
        ran.stderr
    );
    let ran = lab.exec(&["--format", "json", "--artifacts", &art_arg, "nb.md"], &[]);
    let report = Report::of(&ran);
    assert_eq!(ran.status, 0, "{}", report.text);
    assert_eq!(report.output("build"), "server_name web;\n");
    assert_eq!(report.output("check"), "built\n/etc/shadow\n");
    let result = art.join("report/sub/result.txt");
    assert_eq!(fs::read_to_string(&result).unwrap(), "built\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&result).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o7777,
        0o755,
        "set-id bits are dropped on the way out"
    );
    assert!(
        fs::symlink_metadata(art.join("report/leak")).is_err(),
        "a link is left out"
    );
    assert!(
        fs::symlink_metadata(art.join("report/pipe")).is_err(),
        "a fifo is left out"
    );
    let notes = report.notes("out").join("\n");
    assert!(notes.contains("leak") && notes.contains("pipe"), "{notes}");
}

#[test]
fn copy_lines_that_leave_their_directory_or_name_no_machine_are_refused() {
    for (body, needle) in [
        ("COPY ../secret /tmp/x", "leaves its directory"),
        ("COPY /etc/hostname ../../out", "leaves its directory"),
        (
            "COPY nowhere:/etc/hostname /tmp/x",
            "unknown target 'nowhere'",
        ),
        ("COPY /a", "COPY SRC DEST"),
    ] {
        let lab = Lab::new();
        lab.write(
            "nb.md",
            &format!("{TWO_MACHINES}```bash | {{type: 'copy'}}\n{body}\n```\n"),
        );
        let ran = lab.exec(&["nb.md"], &[]);
        assert_eq!(ran.status, 2, "{body}: {}", ran.stderr);
        assert!(ran.stderr.contains(needle), "{body}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("nb.md:10"),
            "{body}: the line is named: {}",
            ran.stderr
        );
    }
}

#[test]
fn each_target_has_its_own_image_setup_workdir_and_environment() {
    let lab = Lab::new();
    let text = "---\nlabrun:\n  env:\n    SHARED: everywhere\n  targets:\n    web:\n      image: busybox\n      workdir: /srv\n      env:\n        ROLE: server\n    client:\n      setup:\n        - echo set up for the client > /etc/role\n      env:\n        ROLE: client\n---\n# Mixed\n\n"
        .to_string()
        + &cell("web", "web", "pwd; echo $ROLE $SHARED; echo busybox page > index.html; httpd -p 8080 -h /srv; readlink /bin/sh")
        + &cell("client", "client", "pwd; echo $ROLE $SHARED; test -x /usr/bin/python3 && echo host image; cat /etc/role; sleep 0.2; busybox wget -qO- http://web:8080/index.html")
        + &cell("web", "no-setup", "cat /etc/role 2>&1");
    lab.write("nb.md", &text);
    let (ran, report) = lab.report("nb.md", &[]);
    if !is_root() {
        assert_eq!(ran.status, 3, "{}", report.text);
        return;
    }
    assert_eq!(ran.status, 0, "{}", report.text);
    assert_eq!(report.output("web"), "/srv\nserver everywhere\nbusybox\n");
    assert_eq!(
        report.output("client"),
        "/lab\nclient everywhere\nhost image\nset up for the client\nbusybox page\n"
    );
    assert_eq!(
        report.output("no-setup"),
        "cat: can't open '/etc/role': No such file or directory\n"
    );
}
