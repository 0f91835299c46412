//! Pulling OCI images from registries (Docker Hub, any other host, a registry on loopback).
//!
//! One concept a file:
//! - `tls`: the roots a registry's certificate is checked against (the system's, plus a CA
//!   given for that registry in a `certs.d` directory, Docker's layout);
//! - `auth`: credentials from the Docker config file, `WWW-Authenticate` challenges, and the
//!   token endpoint of bearer auth;
//! - `client`: HTTP to one registry: HTTPS, plain HTTP only for loopback registries (as
//!   Docker allows), one retry with credentials after a 401, errors that name the image;
//! - `manifest`: manifests and image indexes, and the platform picked from an index;
//! - `blob`: a layer blob streamed through its digest check into the safe unpacker;
//! - `pull`: the whole pull, each layer a cached layer keyed by its digest.
//!
//! Every error is an [`ImageError`] naming the image, so the run fails with exit status 3.

mod auth;
mod blob;
mod client;
mod manifest;
mod pull;
mod tls;

pub use auth::Credentials;
pub use pull::{Pulled, pull, pull_with};

use std::path::PathBuf;

use super::ImageError;
use super::oci_ref::OciRef;

/// Where a pull finds credentials and CA files. [`Settings::from_env`] is what `image:`
/// uses; tests give their own.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The Docker config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// `certs.d` directories, searched in order for `<registry>/*.crt`.
    pub certs_d: Vec<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings {
            docker_config: auth::docker_config_path(),
            certs_d: tls::certs_d_dirs(),
        }
    }
}

/// `sha256:<hex>` of bytes in memory.
fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        super::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// An error about the image `r`: "image 'docker.io/library/alpine:3.20' <problem>".
fn image_error(r: &OciRef, problem: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        image: r.to_string(),
        problem: problem.into(),
    }
}
