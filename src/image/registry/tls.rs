//! The roots a registry's TLS certificate must chain to: the system's bundle, plus the CA
//! files given for that one registry, in Docker's `certs.d` layout.
//!
//! System roots: `$SSL_CERT_FILE`, else the distribution's bundle
//! (`/etc/ssl/certs/ca-certificates.crt` and its peers); a machine without one gets the
//! Mozilla roots compiled into labrun. A registry's own CA: every `*.crt` file in
//! `<certs.d>/<host:port>/`, where `<certs.d>` is `$LABRUN_CERTS_D`, else
//! `/etc/docker/certs.d` and `/etc/containers/certs.d` (where Docker and Podman users already
//! put them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, parse_pem};

use super::ImageError;

const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The roots for `registry` (`host[:port]`, as the reference writes it).
pub fn roots_for(registry: &str, certs_d: &[PathBuf]) -> Result<RootCerts, ImageError> {
    let mut certs = Vec::new();
    match system_bundle() {
        Some(bundle) => certs.extend(read_pem(&bundle)?),
        None if registry_cas(registry, certs_d).is_empty() => return Ok(RootCerts::WebPki),
        None => {}
    }
    for ca in registry_cas(registry, certs_d) {
        certs.extend(read_pem(&ca)?);
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

fn system_bundle() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(file));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The `certs.d` directories searched, in order, from the environment.
pub fn certs_d_dirs() -> Vec<PathBuf> {
    match std::env::var_os("LABRUN_CERTS_D") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![
            PathBuf::from("/etc/docker/certs.d"),
            PathBuf::from("/etc/containers/certs.d"),
        ],
    }
}

/// The `*.crt` files given for `registry`, sorted.
fn registry_cas(registry: &str, certs_d: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in certs_d {
        let Ok(entries) = std::fs::read_dir(dir.join(registry)) else {
            continue;
        };
        found.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt")),
        );
    }
    found.sort();
    found
}

fn read_pem(path: &Path) -> Result<Vec<Certificate<'static>>, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::io_at(path, "reading", e))?;
    let mut certs = Vec::new();
    for item in parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(ImageError::Archive {
                    archive: path.display().to_string(),
                    message: format!("is not a PEM certificate file: {e}"),
                });
            }
        }
    }
    Ok(certs)
}
