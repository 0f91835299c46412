//! The image layer on real files: references parsed against a real notebook directory, the
//! busybox root built from the host's busybox-static and run, tarballs made with `tar` (and,
//! for hostile ones, written header by header) unpacked into a real cache, and the paths the
//! host image hides.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use labrun::image::{
    Cache, Hidden, ImageKind, ImageRef, UnpackOptions, Whiteouts, host_hidden_paths, resolve,
    unpack,
};

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn cache_in(dir: &Path) -> Cache {
    Cache::at(dir.join("cache")).unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Build directories whose builders are gone, and any left-over lock files (`tmp-*`).
fn leftovers(cache: &Cache) -> Vec<String> {
    fs::read_dir(cache.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn sh(cmd: &str, dir: &Path) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

// ---------------------------------------------------------------- references

#[test]
fn references_parse_by_their_shape() {
    let t = temp();
    let nb = t.path().join("nb");
    fs::create_dir_all(nb.join("root")).unwrap();
    fs::create_dir_all(nb.join("sub/tree")).unwrap();
    fs::create_dir_all(t.path().join("beside")).unwrap();
    fs::write(nb.join("rootfs.tar"), "").unwrap();
    fs::write(nb.join("plain"), "").unwrap();
    let p = |s: &str| ImageRef::parse(s, &nb);
    let canon = |s: &str| fs::canonicalize(nb.join(s)).unwrap();

    assert_eq!(p("host").unwrap(), ImageRef::Host);
    assert_eq!(p(" busybox ").unwrap(), ImageRef::Busybox);
    assert_eq!(
        p("debian:bookworm").unwrap(),
        ImageRef::Debian {
            suite: "bookworm".into()
        }
    );
    assert_eq!(p("debian").unwrap().display(), "debian:stable");
    assert_eq!(p("./root").unwrap(), ImageRef::Dir(canon("root")));
    assert_eq!(p("sub/tree").unwrap(), ImageRef::Dir(canon("sub/tree")));
    assert_eq!(p("../beside").unwrap(), ImageRef::Dir(canon("../beside")));
    let abs = canon("root");
    assert_eq!(
        p(abs.to_str().unwrap()).unwrap(),
        ImageRef::Dir(abs.clone())
    );
    assert_eq!(
        p("rootfs.tar").unwrap(),
        ImageRef::Tarball(canon("rootfs.tar"))
    );
    assert_eq!(
        p("./rootfs.tar").unwrap().display(),
        canon("rootfs.tar").display().to_string()
    );

    // Not paths here: OCI references, normalised.
    assert_eq!(
        p("alpine").unwrap().display(),
        "docker.io/library/alpine:latest"
    );
    assert_eq!(p("sub/app:1").unwrap().display(), "docker.io/sub/app:1");
    assert_eq!(
        p("127.0.0.1:5000/lab/img:v2").unwrap().display(),
        "127.0.0.1:5000/lab/img:v2"
    );
}

#[test]
fn bad_references_say_which_image_and_why() {
    let t = temp();
    let nb = t.path();
    fs::write(nb.join("plain"), "").unwrap();
    fs::create_dir(nb.join("dir.tar")).unwrap();
    let err = |s: &str| ImageRef::parse(s, nb).unwrap_err().to_string();
    assert_eq!(err("./root"), "image './root' does not exist");
    assert_eq!(err("x.tar"), "image 'x.tar' does not exist");
    assert_eq!(err("./x.tgz"), "image './x.tgz' does not exist");
    assert!(
        err("./plain").starts_with("image './plain' is not a directory"),
        "{}",
        err("./plain")
    );
    assert!(err("dir.tar").starts_with("image 'dir.tar' is not a file"));
    assert!(
        err("debian:Bookworm").starts_with("image 'debian:Bookworm' does not name a Debian suite")
    );
    let e = err("Ubuntu");
    assert!(
        e.starts_with("image 'Ubuntu' is not host, busybox, debian:<suite>"),
        "{e}"
    );
    assert!(e.contains("'Ubuntu' is not a repository name"), "{e}");
    assert_eq!(err(""), "image '' is empty");
}

#[test]
fn host_and_directory_images() {
    let t = temp();
    let cache = cache_in(t.path());
    let host = resolve(&ImageRef::Host, &cache).unwrap();
    assert_eq!(host.layers, vec![PathBuf::from("/")]);
    assert_eq!(host.kind, ImageKind::Host);
    let expect = if Path::new("/bin/bash").exists() || Path::new("/usr/bin/bash").exists() {
        "bash"
    } else {
        "sh"
    };
    assert_eq!(host.shell_hint.as_deref(), Some(expect));

    let root = t.path().join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/bash"), "").unwrap();
    symlink("/usr/bin", root.join("bin")).unwrap();
    let r = ImageRef::parse("./root", t.path()).unwrap();
    let img = resolve(&r, &cache).unwrap();
    assert_eq!(img.layers, vec![fs::canonicalize(&root).unwrap()]);
    assert_eq!(img.kind, ImageKind::Unpacked);
    assert_eq!(img.shell_hint.as_deref(), Some("bash"));
    fs::remove_dir_all(&root).unwrap();
    let e = resolve(&r, &cache).unwrap_err().to_string();
    assert!(e.contains("root' cannot be opened"), "{e}");
}

// ---------------------------------------------------------------- the cache

#[test]
fn the_cache_is_private() {
    let t = temp();
    let cache = Cache::at(t.path().join("a/b/labrun")).unwrap();
    assert_eq!(mode(cache.root()), 0o700);
    assert_eq!(mode(&cache.root().join("layers")), 0o700);
    // Opening it again is fine; a file where the cache should be is not.
    Cache::at(cache.root()).unwrap();
    fs::write(t.path().join("file"), "").unwrap();
    let e = Cache::at(t.path().join("file")).unwrap_err().to_string();
    assert!(e.contains("file"), "{e}");
}

// ---------------------------------------------------------------- busybox

/// Runs a program, again if it is briefly busy (another test thread forking while it was
/// written keeps a write descriptor open until its exec).
fn run(program: &Path, args: &[&str]) -> String {
    for _ in 0..50 {
        match Command::new(program).args(args).env_clear().output() {
            Ok(out) => {
                assert!(out.status.success(), "{program:?} {args:?}: {out:?}");
                return String::from_utf8(out.stdout).unwrap();
            }
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{program:?}: {e}"),
        }
    }
    panic!("{program:?} stayed busy");
}

#[test]
fn busybox_root_is_built_once_and_runs() {
    let t = temp();
    let cache = cache_in(t.path());
    let img = resolve(&ImageRef::Busybox, &cache).unwrap();
    assert_eq!(img.kind, ImageKind::Unpacked);
    assert_eq!(img.shell_hint.as_deref(), Some("sh"));
    let root = &img.layers[0];
    assert!(root.starts_with(cache.root().join("layers")));

    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::canonicalize(root.join("usr/bin/awk")).unwrap(),
        fs::canonicalize(root.join("bin/busybox")).unwrap()
    );
    assert_eq!(run(&root.join("bin/busybox"), &["echo", "hi"]), "hi\n");
    assert_eq!(run(&root.join("bin/sh"), &["-c", "echo $((1 + 2))"]), "3\n");
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("\nnobody:"));
    assert!(
        fs::read_to_string(root.join("etc/group"))
            .unwrap()
            .starts_with("root:x:0:")
    );
    for (dir, m) in [
        ("", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("root", 0o700),
    ] {
        assert_eq!(mode(&root.join(dir)), m, "{dir}");
    }
    for dir in ["lab", "proc", "dev", "sys", "usr/bin"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    assert_eq!(mode(&root.join("bin/busybox")), 0o755);

    // Again: the same layer (the same directory, by inode), not rebuilt.
    let ino = fs::metadata(root).unwrap().ino();
    let again = resolve(&ImageRef::Busybox, &Cache::at(cache.root()).unwrap()).unwrap();
    assert_eq!(again, img);
    assert_eq!(fs::metadata(&again.layers[0]).unwrap().ino(), ino);
    assert_eq!(leftovers(&cache), Vec::<String>::new());
}

#[test]
fn concurrent_builds_agree_on_one_layer() {
    let t = temp();
    let root = cache_in(t.path()).root().to_path_buf();
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (root, barrier) = (root.clone(), barrier.clone());
            std::thread::spawn(move || {
                let cache = Cache::at(root).unwrap();
                barrier.wait();
                resolve(&ImageRef::Busybox, &cache).unwrap()
            })
        })
        .collect();
    let images: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(images.iter().all(|i| i == &images[0]));
    let layers: Vec<_> = fs::read_dir(root.join("layers")).unwrap().collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(leftovers(&Cache::at(&root).unwrap()), Vec::<String>::new());
}

#[test]
fn a_crashed_build_is_cleaned_up_and_a_live_one_is_not() {
    let t = temp();
    let cache = cache_in(t.path());
    let tmp = cache.root().join("tmp");
    // A crashed build: its directory, and its lock file that nobody holds.
    fs::create_dir_all(tmp.join("tmp-dead/usr")).unwrap();
    fs::write(tmp.join("tmp-dead.lock"), "").unwrap();
    // A build that died before its lock file was there, and a read-only tree inside one.
    fs::create_dir_all(tmp.join("tmp-orphan/ro/deep")).unwrap();
    fs::set_permissions(tmp.join("tmp-orphan/ro"), fs::Permissions::from_mode(0o555)).unwrap();
    // A live build: its lock held.
    fs::create_dir(tmp.join("tmp-live")).unwrap();
    let lock = fs::File::create(tmp.join("tmp-live.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();

    resolve(&ImageRef::Busybox, &cache).unwrap();
    let mut left = leftovers(&cache);
    left.sort();
    assert_eq!(left, ["tmp-live", "tmp-live.lock"]);
    drop(held);
}

// ---------------------------------------------------------------- tarballs

/// A tree with modes, a symbolic link, a hard link, a read-only directory with a file in it,
/// and a file named like a whiteout.
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::create_dir_all(src.join("opt/ro")).unwrap();
    fs::create_dir_all(src.join("usr/bin")).unwrap();
    fs::write(src.join("usr/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(src.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("etc/secret"), "s").unwrap();
    fs::set_permissions(src.join("etc/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("opt/ro/data"), "data").unwrap();
    fs::set_permissions(src.join("opt/ro/data"), fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(src.join("opt/ro"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(src.join("opt"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("/usr/bin/tool", src.join("tool-link")).unwrap();
    fs::hard_link(src.join("usr/bin/tool"), src.join("usr/bin/tool2")).unwrap();
    fs::write(src.join("etc/.wh.kept"), "").unwrap();
    // Longer than a tar header's 100 bytes: a GNU long-name entry.
    fs::create_dir_all(src.join("usr/share").join("d".repeat(90))).unwrap();
    fs::write(long_name(src), "long").unwrap();
}

fn long_name(root: &Path) -> PathBuf {
    root.join("usr/share")
        .join("d".repeat(90))
        .join("f".repeat(60))
}

fn check_tree(root: &Path) {
    assert_eq!(
        fs::read_to_string(root.join("usr/bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    assert_eq!(mode(&root.join("usr/bin/tool")), 0o755);
    assert_eq!(mode(&root.join("etc/secret")), 0o600);
    assert_eq!(mode(&root.join("opt/ro/data")), 0o444);
    assert_eq!(mode(&root.join("opt/ro")), 0o555);
    assert_eq!(mode(&root.join("opt")), 0o750);
    assert_eq!(
        fs::read_link(root.join("tool-link")).unwrap(),
        Path::new("/usr/bin/tool")
    );
    let a = fs::metadata(root.join("usr/bin/tool")).unwrap();
    let b = fs::metadata(root.join("usr/bin/tool2")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert!(root.join("etc/.wh.kept").is_file());
    assert_eq!(fs::read_to_string(long_name(root)).unwrap(), "long");
}

#[test]
fn a_rootfs_tarball_unpacks_with_its_modes_and_links() {
    let t = temp();
    let src = t.path().join("src");
    make_tree(&src);
    let nb = t.path().join("nb");
    fs::create_dir(&nb).unwrap();
    sh(
        &format!(
            "tar -C {} --owner=1234 --group=2345 -cf rootfs.tar .",
            src.display()
        ),
        &nb,
    );
    sh(&format!("tar -C {} -czf rootfs.tgz .", src.display()), &nb);
    let cache = cache_in(t.path());

    let tar = resolve(&ImageRef::parse("./rootfs.tar", &nb).unwrap(), &cache).unwrap();
    assert_eq!(tar.kind, ImageKind::Unpacked);
    check_tree(&tar.layers[0]);
    // Owners are kept by root, and are the unpacking user's otherwise.
    let me = nix::unistd::geteuid().as_raw();
    let (uid, gid) = if me == 0 {
        (1234, 2345)
    } else {
        (me, nix::unistd::getegid().as_raw())
    };
    for p in ["usr/bin/tool", "opt", "tool-link", "."] {
        let m = fs::symlink_metadata(tar.layers[0].join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{p}");
    }
    let gz = resolve(&ImageRef::parse("rootfs.tgz", &nb).unwrap(), &cache).unwrap();
    check_tree(&gz.layers[0]);
    assert_ne!(tar.layers, gz.layers);
    // Cached: the same layer again.
    let again = resolve(&ImageRef::parse("rootfs.tar", &nb).unwrap(), &cache).unwrap();
    assert_eq!(again.layers, tar.layers);
    assert_eq!(leftovers(&cache), Vec::<String>::new());
    // The shell hint looks inside the tarball's tree: no sh there.
    assert_eq!(tar.shell_hint, None);
}

#[test]
fn other_compressions_and_empty_files_are_named() {
    let t = temp();
    let cache = cache_in(t.path());
    fs::write(t.path().join("x.tar"), b"\xfd7zXZ\0rest").unwrap();
    fs::write(t.path().join("empty.tar"), b"").unwrap();
    let r = ImageRef::parse("x.tar", t.path()).unwrap();
    let e = resolve(&r, &cache).unwrap_err().to_string();
    assert!(e.ends_with("x.tar: is compressed with xz; labrun reads tarballs plain or gzip-compressed (.tar, .tar.gz, .tgz)"), "{e}");
    let r = ImageRef::parse("empty.tar", t.path()).unwrap();
    let e = resolve(&r, &cache).unwrap_err().to_string();
    assert!(e.contains("empty.tar: has no entries"), "{e}");
    assert_eq!(leftovers(&cache), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(cache.root().join("layers")).unwrap().count(),
        0
    );
}

#[test]
fn a_truncated_tarball_is_refused() {
    let t = temp();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), vec![b'x'; 100_000]).unwrap();
    sh(
        &format!("tar -C {} -cf cut.tar big", src.display()),
        t.path(),
    );
    let cut = t.path().join("cut.tar");
    let f = fs::OpenOptions::new().write(true).open(&cut).unwrap();
    f.set_len(512 + 50_000).unwrap();
    let cache = cache_in(t.path());
    let e = resolve(&ImageRef::parse("cut.tar", t.path()).unwrap(), &cache)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "cut.tar: entry 'big' is cut short (50000 of 100000 bytes): the archive is truncated"
        ),
        "{e}"
    );
}

/// One tar entry written as given: no checks on the name, as a hostile archive would be.
enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDev(&'a str, u32, u32),
}

fn raw_tar(path: &Path, entries: &[Raw<'_>]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, &str) = match e {
            Raw::File(n, d) => (n, d, tar::EntryType::Regular, ""),
            Raw::Dir(n) => (n, b"", tar::EntryType::Directory, ""),
            Raw::Symlink(n, l) => (n, b"", tar::EntryType::Symlink, l),
            Raw::HardLink(n, l) => (n, b"", tar::EntryType::Link, l),
            Raw::CharDev(n, ..) => (n, b"", tar::EntryType::Char, ""),
        };
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if matches!(e, Raw::Dir(_)) {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if let Raw::CharDev(_, major, minor) = e {
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn hostile_tarballs_are_refused_and_write_nothing_outside() {
    let t = temp();
    let cache = cache_in(t.path());
    let victim = t.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("secret"), "mine").unwrap();
    let v = victim.to_str().unwrap().to_string();
    let abs_file = format!("{v}/planted");
    let cases: Vec<(&str, Vec<Raw<'_>>, String)> = vec![
        (
            "dotdot.tar",
            vec![Raw::File("ok", b"1"), Raw::File("../../x", b"bad")],
            "entry '../../x' escapes the image".into(),
        ),
        (
            "deep-dotdot.tar",
            vec![Raw::File("a/b/../../../../victim/planted", b"bad")],
            "entry 'a/b/../../../../victim/planted' escapes the image".into(),
        ),
        (
            "absolute.tar",
            vec![Raw::File(&abs_file, b"bad")],
            format!("entry '{abs_file}' escapes the image (an absolute path)"),
        ),
        (
            "symlink-write.tar",
            vec![Raw::Symlink("a", &v), Raw::File("a/planted", b"bad")],
            "entry 'a/planted' goes through the symbolic link 'a'".into(),
        ),
        (
            "symlink-dir.tar",
            vec![Raw::Symlink("a", &v), Raw::Dir("a/sub")],
            "entry 'a/sub' goes through the symbolic link 'a'".into(),
        ),
        (
            "hardlink-out.tar",
            vec![Raw::HardLink("h", "/etc/passwd")],
            "entry 'h' is a hard link to '/etc/passwd', outside the image".into(),
        ),
        (
            "hardlink-dotdot.tar",
            vec![Raw::HardLink("h", "../../../victim/secret")],
            "entry 'h' is a hard link to '../../../victim/secret', outside the image".into(),
        ),
        (
            "hardlink-through.tar",
            vec![Raw::Symlink("l", &v), Raw::HardLink("h", "l/secret")],
            "entry 'h' is a hard link through the symbolic link 'l'".into(),
        ),
        (
            "hardlink-missing.tar",
            vec![Raw::HardLink("h", "nothing")],
            "entry 'h' is a hard link to 'nothing', which is not a file earlier in the archive"
                .into(),
        ),
    ];
    for (file, entries, says) in cases {
        let path = t.path().join(file);
        raw_tar(&path, &entries);
        let r = ImageRef::parse(file, t.path()).unwrap();
        let e = resolve(&r, &cache).unwrap_err().to_string();
        assert_eq!(e, format!("{}: {says}", path.display()), "{file}");
    }
    // Nothing outside changed, and nothing half-built stayed in the cache.
    let mut names: Vec<_> = fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"]);
    assert_eq!(fs::read_to_string(victim.join("secret")).unwrap(), "mine");
    assert_eq!(fs::metadata(victim.join("secret")).unwrap().nlink(), 1);
    assert!(!t.path().join("x").exists() && !cache.root().join("x").exists());
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), 1);
    assert_eq!(leftovers(&cache), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(cache.root().join("layers")).unwrap().count(),
        0
    );
}

#[test]
fn later_entries_replace_earlier_ones_inside_the_image() {
    // A link replaced by a directory, a directory by a file: all inside, never through.
    let t = temp();
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let tarball = t.path().join("r.tar");
    raw_tar(
        &tarball,
        &[
            Raw::Symlink("a", outside.to_str().unwrap()),
            Raw::Dir("a"),
            Raw::File("a/f", b"inside"),
            Raw::Dir("d/e"),
            Raw::File("d", b"now a file"),
        ],
    );
    let done = unpack(
        &mut fs::File::open(&tarball).unwrap(),
        &dest,
        &UnpackOptions::new("r.tar"),
    )
    .unwrap();
    assert_eq!(done.entries, 5);
    assert!(fs::symlink_metadata(dest.join("a")).unwrap().is_dir());
    assert_eq!(fs::read_to_string(dest.join("a/f")).unwrap(), "inside");
    assert_eq!(fs::read_to_string(dest.join("d")).unwrap(), "now a file");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn limits_refuse_big_archives() {
    let t = temp();
    let tarball = t.path().join("big.tar");
    raw_tar(
        &tarball,
        &[
            Raw::File("a", b"0123456789"),
            Raw::File("b", b"x"),
            Raw::Dir("c"),
        ],
    );
    let try_with = |bytes: u64, entries: u64| {
        let dest = tempfile::tempdir_in(t.path()).unwrap();
        let mut opts = UnpackOptions::new("big.tar");
        opts.max_bytes = bytes;
        opts.max_entries = entries;
        unpack(&mut fs::File::open(&tarball).unwrap(), dest.path(), &opts)
    };
    assert_eq!(try_with(11, 3).unwrap().bytes, 11);
    let e = try_with(10, 3).unwrap_err().to_string();
    assert_eq!(e, "big.tar: unpacks to more than 10 bytes (the limit)");
    let e = try_with(100, 2).unwrap_err().to_string();
    assert_eq!(e, "big.tar: has more than 2 entries (the limit)");
}

#[test]
fn device_nodes_are_skipped_unless_allowed() {
    let t = temp();
    let tarball = t.path().join("dev.tar");
    raw_tar(
        &tarball,
        &[
            Raw::Dir("dev"),
            Raw::CharDev("dev/null", 1, 3),
            Raw::File("f", b""),
        ],
    );
    let dest = t.path().join("skip");
    fs::create_dir(&dest).unwrap();
    let mut opts = UnpackOptions::new("dev.tar");
    opts.devices = false;
    let done = unpack(&mut fs::File::open(&tarball).unwrap(), &dest, &opts).unwrap();
    assert_eq!(
        done.skipped,
        ["'dev/null' (character device: only root creates device nodes)"]
    );
    assert!(!dest.join("dev/null").exists() && dest.join("f").exists());

    // Through the cache, a non-root unpack keeps the note with the layer.
    let cache = cache_in(t.path());
    let built = labrun::image::tarball::build_with(&tarball, &cache, &opts).unwrap();
    assert_eq!(built.notes.len(), 1);
    assert!(
        built.notes[0].contains("skipped 1 entry: 'dev/null'"),
        "{:?}",
        built.notes
    );
    let again = labrun::image::tarball::build_with(&tarball, &cache, &opts).unwrap();
    assert_eq!(again, built);

    if nix::unistd::geteuid().is_root() {
        let dest = t.path().join("made");
        fs::create_dir(&dest).unwrap();
        opts.devices = true;
        let done = unpack(&mut fs::File::open(&tarball).unwrap(), &dest, &opts).unwrap();
        let m = fs::symlink_metadata(dest.join("dev/null")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        // Root in a user namespace may not create devices: then it is noted, not an error.
        assert!(m.file_type().is_char_device() || done.skipped.len() == 1);
    }
}

#[test]
fn whiteouts_apply_to_the_layers_below() {
    let t = temp();
    let dest = t.path().join("tree");
    // The layer below.
    for d in ["a", "b/old", "keep"] {
        fs::create_dir_all(dest.join(d)).unwrap();
    }
    for f in ["a/x", "a/y", "b/z", "b/old/deep", "c"] {
        fs::write(dest.join(f), "below").unwrap();
    }
    fs::set_permissions(dest.join("keep"), fs::Permissions::from_mode(0o555)).unwrap();
    let layer = t.path().join("layer.tar");
    raw_tar(
        &layer,
        &[
            Raw::File("a/.wh.x", b""),
            Raw::File("b/new", b"this layer"),
            Raw::File("b/.wh..wh..opq", b""),
            Raw::File(".wh.c", b""),
            Raw::File("keep/added", b"into a read-only directory"),
            Raw::File(".wh.never-there", b""),
        ],
    );
    let mut opts = UnpackOptions::new("layer.tar");
    opts.whiteouts = Whiteouts::Apply;
    unpack(&mut fs::File::open(&layer).unwrap(), &dest, &opts).unwrap();
    assert!(!dest.join("a/x").exists() && dest.join("a/y").exists());
    let mut b: Vec<_> = fs::read_dir(dest.join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    b.sort();
    assert_eq!(b, ["new"]);
    assert!(!dest.join("c").exists());
    assert!(dest.join("keep/added").exists());
    assert_eq!(mode(&dest.join("keep")), 0o555);
    assert!(!dest.join("a/.wh.x").exists() && !dest.join(".wh.c").exists());

    // A whiteout may not reach out either.
    let bad = t.path().join("bad.tar");
    raw_tar(
        &bad,
        &[Raw::Symlink("l", "/etc"), Raw::File("l/.wh.passwd", b"")],
    );
    let e = unpack(&mut fs::File::open(&bad).unwrap(), &dest, &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "layer.tar: entry 'l/.wh.passwd' is a whiteout through the symbolic link 'l'"
    );
    assert!(Path::new("/etc/passwd").exists());
}

// ---------------------------------------------------------------- host hiding

#[test]
fn host_hidden_paths_list_what_exists() {
    // Outside /tmp, so that the cache and the notebook are not already hidden by /tmp.
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = cache_in(t.path());
    let nb = t.path().join("nb");
    fs::create_dir(&nb).unwrap();
    let expected = t.path().join("expected.md");
    fs::write(&expected, "").unwrap();
    let extra = [
        nb.clone(),
        expected.clone(),
        t.path().join("missing"),
        nb.join("."),
        PathBuf::from("/tmp"),
    ];
    let hidden = host_hidden_paths(&cache, &extra);
    let has = |p: &Path, is_dir: bool| {
        hidden.contains(&Hidden {
            path: p.to_path_buf(),
            is_dir,
        })
    };
    assert!(has(Path::new("/etc/shadow"), false), "{hidden:?}");
    assert!(has(Path::new("/tmp"), true));
    assert!(has(Path::new("/root"), true));
    // Listed itself, or inside a hidden directory (the checkout may be under /tmp or /root).
    let hidden_or_covered = |p: &Path, is_dir: bool| {
        has(p, is_dir)
            || hidden
                .iter()
                .any(|h| h.is_dir && p != h.path && p.starts_with(&h.path))
    };
    assert!(hidden_or_covered(
        &fs::canonicalize(cache.root()).unwrap(),
        true
    ));
    assert!(hidden_or_covered(&fs::canonicalize(&nb).unwrap(), true));
    assert!(hidden_or_covered(
        &fs::canonicalize(&expected).unwrap(),
        false
    ));
    for h in &hidden {
        assert!(h.path.exists(), "{h:?}");
        assert_eq!(h.path.is_dir(), h.is_dir, "{h:?}");
    }
    let mut paths: Vec<_> = hidden.iter().map(|h| &h.path).collect();
    let n = paths.len();
    paths.dedup();
    assert_eq!(paths.len(), n, "no duplicates");
    // Inside a hidden directory: left out.
    let under_tmp = temp();
    let hidden = host_hidden_paths(&cache, &[under_tmp.path().to_path_buf()]);
    assert!(
        !hidden
            .iter()
            .any(|h| h.path.starts_with(under_tmp.path()) && h.path != Path::new("/tmp"))
    );
}
