//! The pull: the manifest for this platform, then each layer as a cached layer of its own,
//! keyed by its digest (so images that share a base share its layers, and a second pull
//! fetches nothing but the manifest).
//!
//! Each layer is unpacked alone with [`Whiteouts::Overlay`]: its whiteouts and opaque
//! directories become overlayfs's own markers, and the runtime stacks the layers as overlay
//! lower directories, where they hide what the layers below hold.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::client::Client;
use super::manifest::{self, Descriptor};
use super::{ImageError, OciRef, Settings, blob, image_error};
use crate::image::cache::Built;
use crate::image::tarball::skipped_notes;
use crate::image::unpack::{UnpackOptions, Whiteouts};
use crate::image::{Cache, RunConfig};

/// Bump when the tree unpacked from the same layer would differ (a new unpack rule).
const FORMAT: &str = "1";

/// How many layers are fetched at once (Docker's default too).
const PARALLEL_LAYERS: usize = 3;

/// The most layers an image may have (Docker's own limit is 127).
const MAX_LAYERS: usize = 500;

/// A pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The cached layers, lowest first.
    pub layers: Vec<PathBuf>,
    /// The digest of the manifest pulled (for this platform).
    pub manifest_digest: String,
    pub notes: Vec<String>,
    /// The config's `Env`, `WorkingDir` and `User`.
    pub run_config: RunConfig,
}

/// Pulls `r` into `cache` with the credentials and CAs the environment names
/// ([`Settings::from_env`]): what is cached already is not fetched again. Blocking.
pub fn pull(r: &OciRef, cache: &Cache) -> Result<Pulled, ImageError> {
    pull_with(r, cache, &Settings::from_env())
}

/// [`pull`] with the given settings.
pub fn pull_with(r: &OciRef, cache: &Cache, settings: &Settings) -> Result<Pulled, ImageError> {
    let mut client = Client::new(r, settings)?;
    let (manifest, manifest_digest) = manifest::fetch(&mut client, r, &manifest::this_platform())?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(image_error(
            r,
            format!(
                "has {} layers, more than labrun's limit of {MAX_LAYERS}",
                manifest.layers.len()
            ),
        ));
    }
    // Its digest is checked like every blob's; labrun reads how the image's processes run.
    let config = blob::fetch_small(&mut client, r, &manifest.config)?;
    let run_config = RunConfig::parse(&config).map_err(|problem| image_error(r, problem))?;
    let mut pulled = Pulled {
        layers: Vec::new(),
        manifest_digest,
        notes: Vec::new(),
        run_config,
    };
    for built in layers_of(&client, r, &manifest.layers, cache)? {
        pulled.layers.push(built.path);
        pulled.notes.extend(built.notes);
    }
    Ok(pulled)
}

/// The cached layers for `layers`, in order, up to [`PARALLEL_LAYERS`] fetched at once (as
/// Docker does: one stream rarely fills the link, and unpacking overlaps the next download).
/// After a failure no new layer is started; the first failure in layer order is returned.
fn layers_of(
    client: &Client,
    r: &OciRef,
    layers: &[Descriptor],
    cache: &Cache,
) -> Result<Vec<Built>, ImageError> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Built, ImageError>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_LAYERS.min(layers.len()) {
            let mut client = client.clone();
            let (next, results) = (&next, &results);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = layers.get(i) else {
                        break;
                    };
                    let built = layer_of(&mut client, r, layer, cache);
                    let failed = built.is_err();
                    *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(built);
                    if failed {
                        next.store(layers.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut done = Vec::with_capacity(layers.len());
    let mut skipped = false;
    for slot in results {
        match slot.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(Ok(built)) => done.push(built),
            Some(Err(e)) => return Err(e),
            None => skipped = true,
        }
    }
    // Layers are started in order, so one not started comes after the one that failed.
    if skipped {
        return Err(image_error(r, "cannot be pulled: a layer was not fetched"));
    }
    Ok(done)
}

fn layer_of(
    client: &mut Client,
    r: &OciRef,
    layer: &Descriptor,
    cache: &Cache,
) -> Result<Built, ImageError> {
    let hex = layer
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| {
            image_error(
                r,
                format!(
                    "has layer '{}', not a sha256 digest (labrun verifies sha256)",
                    layer.digest
                ),
            )
        })?;
    let mut opts = UnpackOptions::new(format!("{r} layer {}", layer.digest));
    opts.whiteouts = Whiteouts::Overlay;
    let key = format!("oci-{}", opts.tree_key("labrun oci layer", FORMAT, hex));
    cache.get_or_build(&key, |dest| {
        std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| ImageError::io_at(dest, "preparing", e))?;
        let done = blob::fetch_and_unpack(client, r, layer, dest, &opts)?;
        Ok(skipped_notes(&opts.label, &done))
    })
}
