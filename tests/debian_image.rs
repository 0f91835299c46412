//! `image: debian:<suite>` for real: debootstrap from the mirror this machine's apt uses,
//! into the user's own cache (so the minute it takes is spent once per machine, as for a
//! user), then a second run that builds nothing.

mod common;

use std::time::{Duration, Instant};

use common::{Lab, is_root};

const NOTEBOOK: &str = "---\nlabrun: {image: 'debian:bookworm'}\n---\n\n```console\n\
$ cut -d. -f1 /etc/debian_version\n12\n$ test -x /usr/bin/apt-get && echo apt\napt\n```\n";

#[test]
fn debian_bookworm_is_built_once_then_cached() {
    if !is_root() {
        return; // debootstrap needs root
    }
    let lab = Lab::new();
    lab.write("nb.md", NOTEBOOK);
    lab.exec(&["nb.md"], &[]).status(0);
    let started = Instant::now();
    let again = lab.exec(&["nb.md"], &[]);
    again.status(0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the cached image took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_mirror_fails_naming_the_image_and_debootstrap() {
    if !is_root() {
        return;
    }
    let lab = Lab::new();
    lab.write("nb.md", &NOTEBOOK.replace("bookworm", "bullseye"));
    let cache = lab.path("cache").to_string_lossy().into_owned();
    let ran = lab.exec(
        &["nb.md"],
        &[
            ("LABRUN_CACHE", &cache),
            ("LABRUN_DEBIAN_MIRROR", "http://127.0.0.1:9/debian"),
        ],
    );
    ran.status(3)
        .stderr_has("image 'debian:bullseye' could not be built: debootstrap bullseye");
}
