//! Benchmark: cached image resolution. A notebook's image (busybox, or debian:bookworm when
//! it is cached) with twenty setup steps whose layers all exist: the time from `image:` as
//! written to the root's layer list, as a run spends it before its container starts.
//! `cargo bench --bench image_resolve` (as root: the layers are built once first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labrun::env::EnvSpec;
use labrun::env::container::rootfs::RootSource;
use labrun::env::container::setup::stack;
use labrun::image::{self, Cache, ImageRef};
use labrun::notebook::BackendKind;

fn spec(image: &str, notebook_dir: &Path) -> EnvSpec {
    EnvSpec {
        backend: BackendKind::Container,
        env: BTreeMap::new(),
        notebook_dir: notebook_dir.to_path_buf(),
        shell: None,
        hostname: "bench".into(),
        image: Some(image.into()),
        workdir: None,
        host_network: false,
        limits: BTreeMap::new(),
        privileged: false,
        setup: (1..=20).map(|i| format!("echo {i} > /step{i}")).collect(),
        rebuild: false,
        hidden: vec![],
        ..EnvSpec::default()
    }
}

/// One resolution: parse, resolve the image, find (or build, the first time) the steps.
fn resolve(spec: &EnvSpec, cache: &Cache) -> Vec<PathBuf> {
    let r = ImageRef::parse(spec.image.as_deref().unwrap(), &spec.notebook_dir).unwrap();
    let img = image::resolve(&r, cache).unwrap();
    let source = RootSource::Layers(img.layers.clone());
    match stack(spec, &img, source, "/bin/sh", cache).unwrap() {
        RootSource::Layers(l) => l,
        RootSource::Host { layers, .. } => layers,
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("labrun-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = Cache::open().unwrap();
    let mut images = vec!["busybox"];
    if let Ok(debian) = image::resolve(&ImageRef::parse("debian:bookworm", &dir).unwrap(), &cache) {
        drop(debian);
        images.push("debian:bookworm");
    }
    let runs = 200;
    for name in images {
        let spec = spec(name, &dir);
        let layers = resolve(&spec, &cache).len();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(resolve(&spec, &cache));
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "{name} + 20 setup steps ({layers} layers): median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({runs} runs)",
            times[runs / 2].as_secs_f64() * 1e3,
            times[runs * 95 / 100].as_secs_f64() * 1e3,
            times[runs - 1].as_secs_f64() * 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
