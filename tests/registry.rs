//! OCI images pulled from a real registry: Debian's `docker-registry` started on 127.0.0.1 by
//! each test, images made with `umoci` and pushed with `skopeo`, layers written with `tar`.
//! Basic auth over TLS uses a CA the test makes with `openssl`; bearer auth uses a token
//! endpoint the test serves itself, with tokens signed by `openssl`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Lab, wait_until};
use labrun::image::registry::{Pulled, Settings, pull_with};
use labrun::image::{Cache, ImageRef, OciRef};

// ---------------------------------------------------------------- the harness

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(script: &str) -> String {
    run(Command::new("sh").arg("-ec").arg(script))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` on 127.0.0.1, stopped when dropped.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A registry with `extra` appended to its config (an `auth:` section) and, with `tls`,
    /// serving HTTPS with that certificate and key.
    fn start(extra: &str, tls: Option<(&Path, &Path)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let tls = tls
            .map(|(cert, key)| {
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                )
            })
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{tls}{extra}",
            dir.path().join("store").display()
        );
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (scripts/setup.sh installs it)");
        let up = wait_until(15.0, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        let r = Registry { child, port, dir };
        assert!(up, "the registry did not start:\n{}", r.log());
        r
    }

    fn plain() -> Registry {
        Registry::start("", None)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The HTTP status of each request the registry answered, in order (it logs a 401 as
    /// "error authorizing context", the rest as "response completed").
    fn statuses(&self) -> Vec<u16> {
        self.log()
            .lines()
            .filter_map(|l| {
                if l.contains("error authorizing context") {
                    return Some(401);
                }
                let at = l.find("http.response.status=")? + "http.response.status=".len();
                l[at..].get(..3)?.parse().ok()
            })
            .collect()
    }

    /// skopeo, with an auth file of its own (it reads none of the user's, which an
    /// unprivileged user may not be able to read).
    fn skopeo(&self) -> Command {
        let mut cmd = Command::new("skopeo");
        cmd.env(
            "REGISTRY_AUTH_FILE",
            self.dir.path().join("skopeo-auth.json"),
        );
        cmd
    }

    /// Pushes the layout's `tag` to `<addr>/<dest>` with skopeo.
    fn push(&self, layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
        let mut cmd = self.skopeo();
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{dest}", self.addr()));
        run(&mut cmd);
    }

    /// The stored file of a blob (to damage it).
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("store/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OCI layout built with umoci from layer directories, each tarred as it is (so `.wh.`
/// files in them are whiteouts).
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(dir.path().join("oci")));
        Layout { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    /// A new image `tag` of the given layers (directories, lowest first) and architecture.
    fn image(&self, tag: &str, arch: &str, layers: &[&Path]) {
        let image = format!("{}:{tag}", self.path().display());
        run(Command::new("umoci").args(["new", "--image", &image]));
        run(Command::new("umoci").args(["config", "--image", &image, "--architecture", arch]));
        for (i, layer) in layers.iter().enumerate() {
            let tar = self.dir.path().join(format!("{tag}-{i}.tar"));
            run(Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(layer)
                .arg("-cf")
                .arg(&tar)
                .arg("."));
            run(Command::new("umoci")
                .args(["raw", "add-layer", "--image", &image])
                .arg(&tar));
        }
    }
}

/// A directory tree written from `(path, content)` pairs; a path ending in `/` is a
/// directory, content `->x` a link to x.
fn tree(base: &Path, name: &str, entries: &[(&str, &str)]) -> PathBuf {
    let root = base.join(name);
    fs::create_dir_all(&root).unwrap();
    for (path, content) in entries {
        let p = root.join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if let Some(target) = content.strip_prefix("->") {
            std::os::unix::fs::symlink(target, &p).unwrap();
        } else {
            fs::write(&p, content).unwrap();
        }
    }
    root
}

/// A busybox root (the applets the tests use).
fn busybox_root(base: &Path) -> PathBuf {
    common::busybox_tree(
        &base.join("base"),
        &["sh", "cat", "ls", "echo", "test", "uname"],
    );
    tree(
        base,
        "base",
        &[("etc/greeting", "hello from the registry\n"), ("tmp/", "")],
    )
}

/// The layer above the base: removes /etc/greeting, makes /data opaque, adds /data/new.
fn whiteout_layer(base: &Path) -> PathBuf {
    tree(
        base,
        "top",
        &[
            ("etc/.wh.greeting", ""),
            ("data/.wh..wh..opq", ""),
            ("data/new", "from the top layer\n"),
        ],
    )
}

/// An extended attribute's value, if set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated strings and a buffer of the length given, all alive for the call.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    usize::try_from(n).ok().map(|n| buf[..n].to_vec())
}

fn settings(dir: &Path) -> Settings {
    Settings {
        docker_config: Some(dir.join("docker/config.json")),
        certs_d: vec![dir.join("certs.d")],
    }
}

fn write_docker_config(dir: &Path, registry: &str, user: &str, password: &str) {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    fs::create_dir_all(dir.join("docker")).unwrap();
    fs::write(
        dir.join("docker/config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
}

fn pull_in(text: &str, dir: &Path) -> Result<Pulled, String> {
    let cache = Cache::at(dir.join("cache")).unwrap();
    let r = OciRef::parse(text).unwrap();
    pull_with(&r, &cache, &settings(dir)).map_err(|e| e.to_string())
}

/// The digest of the manifest `reference` points at, as skopeo sees it.
fn manifest_digest(registry: &Registry, reference: &str) -> String {
    run(registry.skopeo().args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{}/{reference}", registry.addr()),
    ]))
    .trim()
    .to_string()
}

fn raw_manifest(registry: &Registry, reference: &str) -> serde_json::Value {
    let raw = run(registry.skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/{reference}", registry.addr()),
    ]));
    serde_json::from_str(&raw).unwrap()
}

// ---------------------------------------------------------------- pulls

#[test]
fn an_image_with_a_whiteout_is_pulled_layer_by_layer_and_runs_in_a_container() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let base = busybox_root(t.path());
    fs::create_dir_all(base.join("data")).unwrap();
    fs::write(base.join("data/old"), "from the base\n").unwrap();
    let top = whiteout_layer(t.path());
    let layout = Layout::new();
    layout.image("wh", "amd64", &[&base, &top]);
    reg.push(&layout.path(), "wh", "lab/whiteout:1", None);

    let image = format!("{}/lab/whiteout:1", reg.addr());
    let pulled = pull_in(&image, t.path()).unwrap();
    assert_eq!(pulled.layers.len(), 2);
    assert_eq!(
        pulled.manifest_digest,
        manifest_digest(&reg, "lab/whiteout:1")
    );
    let top_layer = &pulled.layers[1];
    let marker = fs::symlink_metadata(top_layer.join("etc/greeting")).unwrap();
    assert!(
        marker.file_type().is_char_device() && marker.rdev() == 0,
        "a 0:0 whiteout"
    );
    assert!(!top_layer.join("etc/.wh.greeting").exists());
    assert!(!top_layer.join("data/.wh..wh..opq").exists());
    // Rootless overlay mounts read user.overlay.*, root's trusted.overlay.*.
    let mut attrs = vec!["user.overlay.opaque"];
    if common::is_root() {
        attrs.push("trusted.overlay.opaque");
    }
    for attr in attrs {
        assert_eq!(
            xattr(&top_layer.join("data"), attr).as_deref(),
            Some(&b"y"[..]),
            "{attr}"
        );
    }

    // A second pull fetches the manifest and config only.
    let before = reg.statuses().len();
    let again = pull_in(&image, t.path()).unwrap();
    assert_eq!(again, pulled);
    assert_eq!(reg.statuses().len() - before, 2, "{:?}", reg.statuses());

    // In a labrun container, the whiteout hides the base's file and the opaque directory
    // the base's /data.
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &format!(
            "---\nlabrun:\n  image: {image}\n---\n\n```console\n$ cat /data/new\nfrom the top layer\n\
             $ ls /data\nnew\n$ test -e /etc/greeting || echo whited out\nwhited out\n```\n"
        ),
    );
    let cache = t.path().join("cache");
    let ran = lab.run_env(
        &["nb.md"],
        &[
            ("LABRUN_CACHE", cache.to_str().unwrap()),
            ("DOCKER_CONFIG", t.path().join("docker").to_str().unwrap()),
        ],
    );
    ran.status(0);
}

#[test]
fn the_images_config_gives_the_shells_their_environment_and_working_directory() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let base = busybox_root(t.path());
    let tool = tree(
        t.path(),
        "tool",
        &[(
            "opt/tool/bin/greet",
            "#!/bin/sh\necho \"greeted by the tool\"\n",
        )],
    );
    fs::set_permissions(
        tool.join("opt/tool/bin/greet"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let layout = Layout::new();
    layout.image("configured", "amd64", &[&base, &tool]);
    let image_in_layout = format!("{}:configured", layout.path().display());
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image_in_layout,
        "--config.env",
        "PATH=/opt/tool/bin:/bin",
        "--config.env",
        "GREETING=hello from the config",
        "--config.env",
        "OVERRIDDEN=by the image",
        "--config.workingdir",
        "/srv/app",
        "--config.user",
        "1000:1000",
    ]));
    reg.push(&layout.path(), "configured", "lab/configured:1", None);
    let image = format!("{}/lab/configured:1", reg.addr());

    // The config's Env comes before the notebook's env:, and WorkingDir (which the image does
    // not even hold) is where the cells start and setup steps run. User is said, not applied.
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &format!(
            "---\nlabrun:\n  image: {image}\n  env:\n    OVERRIDDEN: by the notebook\n  setup:\n    \
             - echo \"$GREETING in $(pwd)\" > /setup-saw\n---\n\n```console\n\
             $ echo \"$GREETING; $OVERRIDDEN\"\nhello from the config; by the notebook\n\
             $ pwd\n/srv/app\n$ greet\ngreeted by the tool\n$ cat /setup-saw\n\
             hello from the config in /srv/app\n```\n"
        ),
    );
    let (cache, docker) = (t.path().join("cache"), t.path().join("docker"));
    let env = [
        ("LABRUN_CACHE", cache.to_str().unwrap()),
        ("DOCKER_CONFIG", docker.to_str().unwrap()),
    ];
    lab.run_env(&["nb.md"], &env)
        .status(0)
        .stdout_has("the image's config runs its processes as user '1000:1000'");

    // The notebook's workdir: wins over the config's.
    lab.write(
        "own-workdir.md",
        &format!(
            "---\nlabrun:\n  image: {image}\n  workdir: /lab\n---\n\n```console\n$ pwd\n/lab\n```\n"
        ),
    );
    lab.run_env(&["own-workdir.md"], &env).status(0);

    // A config labrun cannot honour as written is refused by name.
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image_in_layout,
        "--config.workingdir",
        "relative/dir",
    ]));
    reg.push(&layout.path(), "configured", "lab/configured:2", None);
    lab.write(
        "bad.md",
        &lab.read("own-workdir.md")
            .replace("configured:1", "configured:2"),
    );
    lab.run_env(&["bad.md"], &env)
        .status(3)
        .stderr_has("has a config whose WorkingDir 'relative/dir' is not an absolute path");
}

#[test]
fn an_image_of_many_layers_runs() {
    // More layers than one overlay mount option can name by their cache paths (about 40 here).
    const LAYERS: usize = 70;
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let mut layers = vec![busybox_root(t.path())];
    for i in 1..LAYERS {
        let content = format!("layer {i}\n");
        let path = format!("layers/{i:03}");
        layers.push(tree(t.path(), &format!("l{i}"), &[(&path, &content)]));
    }
    let refs: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    let layout = Layout::new();
    layout.image("many", "amd64", &refs);
    reg.push(&layout.path(), "many", "lab/many:1", None);
    let image = format!("{}/lab/many:1", reg.addr());
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &format!(
            "---\nlabrun:\n  image: {image}\n---\n\n```console\n$ ls /layers | wc -l\n{}\n\
             $ cat /layers/001 /layers/{:03}\nlayer 1\nlayer {}\n```\n",
            LAYERS - 1,
            LAYERS - 1,
            LAYERS - 1
        ),
    );
    let cache = t.path().join("cache");
    lab.run_env(
        &["nb.md"],
        &[
            ("LABRUN_CACHE", cache.to_str().unwrap()),
            ("DOCKER_CONFIG", t.path().join("docker").to_str().unwrap()),
        ],
    )
    .status(0);
}

#[test]
fn a_tag_a_digest_and_the_platform_of_an_index() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let layout = Layout::new();
    let amd = tree(t.path(), "amd", &[("platform", "amd64\n")]);
    let arm = tree(t.path(), "arm", &[("platform", "arm64\n")]);
    layout.image("amd", "amd64", &[&amd]);
    layout.image("arm", "arm64", &[&arm]);
    reg.push(&layout.path(), "amd", "lab/multi:amd64", None);
    reg.push(&layout.path(), "arm", "lab/multi:arm64", None);
    let entry = |tag: &str, arch: &str| {
        let digest = manifest_digest(&reg, &format!("lab/multi:{tag}"));
        let raw = run(reg.skopeo().args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/lab/multi:{tag}", reg.addr()),
        ]));
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": raw.len(),
            "platform": {"os": "linux", "architecture": arch}
        })
    };
    // arm64 first, so picking the first entry would be wrong.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm64", "arm64"), entry("amd64", "amd64")]
    });
    let body = serde_json::to_vec(&index).unwrap();
    let put = ureq::put(format!("http://{}/v2/lab/multi/manifests/both", reg.addr()))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .send(&body[..])
        .unwrap();
    assert_eq!(put.status(), 201);

    let pulled = pull_in(&format!("{}/lab/multi:both", reg.addr()), t.path()).unwrap();
    assert_eq!(pulled.layers.len(), 1);
    assert_eq!(
        fs::read_to_string(pulled.layers[0].join("platform")).unwrap(),
        "amd64\n"
    );
    assert_eq!(
        pulled.manifest_digest,
        manifest_digest(&reg, "lab/multi:amd64")
    );

    // By digest: the arm64 manifest itself (no index involved).
    let arm_digest = manifest_digest(&reg, "lab/multi:arm64");
    let by_digest = pull_in(&format!("{}/lab/multi@{arm_digest}", reg.addr()), t.path()).unwrap();
    assert_eq!(
        fs::read_to_string(by_digest.layers[0].join("platform")).unwrap(),
        "arm64\n"
    );

    // An index without this machine's platform names what it offers.
    let only_arm = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm64", "arm64")]
    });
    ureq::put(format!(
        "http://{}/v2/lab/multi/manifests/armonly",
        reg.addr()
    ))
    .header("Content-Type", "application/vnd.oci.image.index.v1+json")
    .send(&serde_json::to_vec(&only_arm).unwrap()[..])
    .unwrap();
    let err = pull_in(&format!("{}/lab/multi:armonly", reg.addr()), t.path()).unwrap_err();
    assert!(
        err.contains("has no linux/amd64 image: its index offers linux/arm64"),
        "{err}"
    );
}

// ---------------------------------------------------------------- failures

#[test]
fn unknown_images_and_unreachable_registries_are_named() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let err = pull_in(&format!("{}/lab/nothing:1", reg.addr()), t.path()).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "image '{}/lab/nothing:1' was not found: registry",
            reg.addr()
        )) && err.contains("has no manifest 1")
            && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );

    let port = free_port();
    let err = pull_in(&format!("127.0.0.1:{port}/lab/app:1"), t.path()).unwrap_err();
    assert!(
        err.contains(&format!(
            "cannot be pulled: registry 127.0.0.1:{port} is unreachable: connection refused"
        )),
        "{err}"
    );

    // Through the binary: exit status 3, the image named.
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &format!(
            "---\nlabrun:\n  image: {}/lab/nothing:2\n---\n\n```console\n$ echo hi\nhi\n```\n",
            reg.addr()
        ),
    );
    let cache = t.path().join("cache");
    lab.run_env(&["nb.md"], &[("LABRUN_CACHE", cache.to_str().unwrap())])
        .status(3)
        .stderr_has("lab/nothing:2' was not found");
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_is_refused_and_not_cached() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let layout = Layout::new();
    let content: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let layer = tree(t.path(), "l", &[("file", content.as_str())]);
    layout.image("x", "amd64", &[&layer]);
    reg.push(&layout.path(), "x", "lab/damaged:1", None);
    let manifest = raw_manifest(&reg, "lab/damaged:1");
    let digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = reg.blob_file(&digest);
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();

    let image = format!("{}/lab/damaged:1", reg.addr());
    for _ in 0..2 {
        let err = pull_in(&image, t.path()).unwrap_err();
        assert!(
            err.contains(&format!(
                "failed its digest check: layer {digest} arrived as"
            )),
            "{err}"
        );
    }
    let cached: Vec<_> = fs::read_dir(t.path().join("cache/layers"))
        .unwrap()
        .collect();
    assert!(cached.is_empty(), "nothing cached: {cached:?}");
}

#[test]
fn a_layer_that_escapes_the_image_is_refused() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let layout = Layout::new();
    let image_tag = format!("{}:x", layout.path().display());
    run(Command::new("umoci").args(["new", "--image", &image_tag]));
    // tar will not write such a name; Python's tarfile will.
    let hostile = t.path().join("hostile.tar");
    run(Command::new("python3").arg("-c").arg(format!(
        "import io, tarfile\n\
         t = tarfile.open('{}', 'w')\n\
         i = tarfile.TarInfo('../escaped'); i.size = 3\n\
         t.addfile(i, io.BytesIO(b'bad'))\n\
         t.close()",
        hostile.display()
    )));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image_tag])
        .arg(&hostile));
    reg.push(&layout.path(), "x", "lab/hostile:1", None);
    let err = pull_in(&format!("{}/lab/hostile:1", reg.addr()), t.path()).unwrap_err();
    assert!(
        err.contains("entry '../escaped' escapes the image"),
        "{err}"
    );
    let cache = t.path().join("cache");
    assert!(!cache.join("escaped").exists() && !cache.join("tmp/escaped").exists());
    assert_eq!(fs::read_dir(cache.join("layers")).unwrap().count(), 0);
}

// ---------------------------------------------------------------- basic auth over TLS

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    sh(&format!(
        "cd '{}'
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
            -subj /CN=labrun-test-ca 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj /CN=127.0.0.1 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 2 -extfile ext 2>/dev/null",
        dir.display()
    ));
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

#[test]
fn basic_auth_over_tls_with_a_given_ca() {
    let t = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(t.path());
    sh(&format!(
        "htpasswd -Bbn student s3cret > '{}'",
        t.path().join("htpasswd").display()
    ));
    let reg = Registry::start(
        &format!(
            "auth:\n  htpasswd:\n    realm: labrun-test\n    path: {}\n",
            t.path().join("htpasswd").display()
        ),
        Some((&cert, &key)),
    );
    let layout = Layout::new();
    let layer = tree(t.path(), "l", &[("secret", "behind basic auth\n")]);
    layout.image("x", "amd64", &[&layer]);
    reg.push(&layout.path(), "x", "lab/private:1", Some("student:s3cret"));
    let image = format!("{}/lab/private:1", reg.addr());

    // No CA for it: the TLS error says where labrun looks.
    let err = pull_in(&image, t.path()).unwrap_err();
    assert!(
        err.contains("is unreachable") && err.contains("certificate") && err.contains("certs.d"),
        "{err}"
    );

    let cas = t.path().join("certs.d").join(reg.addr());
    fs::create_dir_all(&cas).unwrap();
    fs::copy(&ca, cas.join("ca.crt")).unwrap();

    // The CA, no credentials: refused, saying so.
    let err = pull_in(&image, t.path()).unwrap_err();
    assert!(
        err.contains("wants credentials") && err.contains("has none for it"),
        "{err}"
    );

    // Wrong credentials: refused, naming the user and the file.
    write_docker_config(t.path(), &reg.addr(), "student", "wrong");
    let err = pull_in(&image, t.path()).unwrap_err();
    assert!(
        err.contains("refused the credentials of user 'student'") && err.contains("config.json"),
        "{err}"
    );

    write_docker_config(
        t.path(),
        &format!("https://{}", reg.addr()),
        "student",
        "s3cret",
    );
    let pulled = pull_in(&image, t.path()).unwrap();
    assert_eq!(
        fs::read_to_string(pulled.layers[0].join("secret")).unwrap(),
        "behind basic auth\n"
    );
}

// ---------------------------------------------------------------- bearer tokens

/// A token endpoint on 127.0.0.1: answers requests with the right Basic credentials with
/// `token`, others with 401, and records each request's first line.
struct TokenServer {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    fn start(token: String, basic: String) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of requests.
            for stream in listener.incoming().take(50) {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).ok();
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if line.to_ascii_lowercase().starts_with("authorization:")
                        && line.trim_end().ends_with(&basic)
                    {
                        authorized = true;
                    }
                }
                log.lock().unwrap().push(first.trim().to_string());
                let (status, body) = if authorized {
                    ("200 OK", format!(r#"{{"token":"{token}"}}"#))
                } else {
                    ("401 Unauthorized", "{}".to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer { port, seen }
    }
}

/// A JWT the registry accepts: RS256, signed by `key`, its certificate in `x5c`.
fn signed_token(dir: &Path, cert_der: &[u8], repository: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header =
        serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(cert_der)]});
    let claims = serde_json::json!({
        "iss": "labrun-test-issuer", "sub": "student", "aud": "labrun-test",
        "exp": now + 600, "nbf": now - 60, "iat": now - 60, "jti": format!("t{now}"),
        "access": [{"type": "repository", "name": repository, "actions": ["pull"]}]
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    fs::write(dir.join("input"), &signing_input).unwrap();
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("token.key"))
        .arg("-out")
        .arg(dir.join("sig"))
        .arg(dir.join("input")));
    let sig = fs::read(dir.join("sig")).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn bearer_auth_goes_401_then_token_then_200() {
    let t = tempfile::tempdir().unwrap();
    sh(&format!(
        "cd '{}'
         openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key -out token.crt -days 2 \
            -subj /CN=labrun-test-token 2>/dev/null
         openssl x509 -in token.crt -outform der -out token.der",
        t.path().display()
    ));
    let der = fs::read(t.path().join("token.der")).unwrap();
    let token = signed_token(t.path(), &der, "lab/tokened");
    let basic = STANDARD.encode("student:tokenpass");
    let server = TokenServer::start(token, basic);
    let reg = Registry::start(
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: labrun-test\n    \
             issuer: labrun-test-issuer\n    rootcertbundle: {}\n",
            server.port,
            t.path().join("token.crt").display()
        ),
        None,
    );
    // The push goes through the same token endpoint (a pull-only token: the push is made
    // before auth is turned on, in a registry sharing the storage).
    let open = Registry::start("", None);
    let layout = Layout::new();
    let layer = tree(t.path(), "l", &[("file", "behind a token\n")]);
    layout.image("x", "amd64", &[&layer]);
    open.push(&layout.path(), "x", "lab/tokened:1", None);
    copy_store(&open, &reg);

    let image = format!("{}/lab/tokened:1", reg.addr());
    write_docker_config(t.path(), &reg.addr(), "student", "wrong");
    let err = pull_in(&image, t.path()).unwrap_err();
    assert!(
        err.contains("refused the credentials of user 'student'"),
        "{err}"
    );

    write_docker_config(t.path(), &reg.addr(), "student", "tokenpass");
    let before = reg.statuses().len();
    let asked_before = server.seen.lock().unwrap().len();
    let pulled = pull_in(&image, t.path()).unwrap();
    assert_eq!(
        fs::read_to_string(pulled.layers[0].join("file")).unwrap(),
        "behind a token\n"
    );
    let statuses = reg.statuses()[before..].to_vec();
    assert_eq!(statuses[..2], [401, 200], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s == 200), "{statuses:?}");
    let asked = server.seen.lock().unwrap()[asked_before..].to_vec();
    assert_eq!(
        asked,
        ["GET /token?service=labrun-test&scope=repository:lab/tokened:pull HTTP/1.1"],
        "one token, asked once"
    );
}

/// Copies one registry's storage into another's (both filesystem-backed).
fn copy_store(from: &Registry, to: &Registry) {
    sh(&format!(
        "cp -a '{}/.' '{}/'",
        from.dir.path().join("store").display(),
        {
            let d = to.dir.path().join("store");
            fs::create_dir_all(&d).unwrap();
            d.display().to_string()
        }
    ));
}

// ---------------------------------------------------------------- references

#[test]
fn docker_hub_names_resolve_to_docker_hub() {
    let t = tempfile::tempdir().unwrap();
    for (text, full) in [
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        (
            "docker.io/library/ubuntu:24.04",
            "docker.io/library/ubuntu:24.04",
        ),
        ("owner/app", "docker.io/owner/app:latest"),
    ] {
        match ImageRef::parse(text, t.path()).unwrap() {
            ImageRef::Oci(r) => assert_eq!(r.to_string(), full),
            other => panic!("{text}: {other:?}"),
        }
    }
}
