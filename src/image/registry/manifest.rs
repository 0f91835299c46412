//! Manifests and image indexes: fetched, checked against their digest, and the one manifest
//! for this machine's platform picked from an index.
//!
//! Both OCI's media types and Docker's schema 2 (manifest and manifest list) are read. A
//! manifest fetched by digest must hash to it; one fetched by tag must hash to the
//! `Docker-Content-Digest` the registry sent, when it sent one.

use serde::Deserialize;

use super::client::{Client, SMALL_BODY_LIMIT, header};
use super::{ImageError, OciRef, image_error, sha256_digest};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A blob or manifest as another document points at it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest: its config and layers, lowest first.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Either document a manifest URL may answer with.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// This machine's platform, as image indexes name it.
pub fn this_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    }
}

/// The image's manifest for `platform`: by digest or tag, through an index when there is one.
/// Returns the manifest and its digest.
pub fn fetch(
    client: &mut Client,
    r: &OciRef,
    platform: &Platform,
) -> Result<(Manifest, String), ImageError> {
    let reference = r
        .digest
        .clone()
        .or_else(|| r.tag_or_latest().map(str::to_string))
        .unwrap_or_default();
    let (doc, digest) = fetch_document(client, r, &reference, r.digest.as_deref())?;
    match doc {
        Fetched::Manifest(m) => Ok((m, digest)),
        Fetched::Index(entries) => {
            let chosen = choose(&entries, platform).ok_or_else(|| {
                let offered: Vec<String> = entries
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                image_error(
                    r,
                    format!(
                        "has no {platform} image: its index offers {}",
                        if offered.is_empty() {
                            "no platforms".into()
                        } else {
                            offered.join(", ")
                        }
                    ),
                )
            })?;
            let digest = chosen.digest.clone();
            match fetch_document(client, r, &digest, Some(&digest))?.0 {
                Fetched::Manifest(m) => Ok((m, digest)),
                Fetched::Index(_) => Err(image_error(
                    r,
                    format!("index entry {digest} is another index, not an image manifest"),
                )),
            }
        }
    }
}

enum Fetched {
    Manifest(Manifest),
    Index(Vec<Descriptor>),
}

fn fetch_document(
    client: &mut Client,
    r: &OciRef,
    reference: &str,
    expected: Option<&str>,
) -> Result<(Fetched, String), ImageError> {
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    let mut response = client.get(
        &format!("/v2/{}/manifests/{reference}", r.repository),
        &accept,
        &format!("manifest {reference}"),
    )?;
    let sent_digest = header(&response, "docker-content-digest");
    let body = response
        .body_mut()
        .with_config()
        .limit(SMALL_BODY_LIMIT)
        .read_to_vec()
        .map_err(|e| image_error(r, format!("reading manifest {reference}: {e}")))?;
    let actual = sha256_digest(&body);
    if let Some(want) = expected.or(sent_digest.as_deref())
        && want.starts_with("sha256:")
        && want != actual
    {
        return Err(image_error(
            r,
            format!(
                "failed its digest check: manifest {reference} should be {want} but is {actual}"
            ),
        ));
    }
    let doc: Document = serde_json::from_slice(&body)
        .map_err(|e| image_error(r, format!("has a malformed manifest {reference}: {e}")))?;
    let media_type = doc.media_type.as_deref().unwrap_or("");
    let fetched = match (doc.manifests, doc.config, doc.layers) {
        (Some(entries), _, _) => Fetched::Index(entries),
        (None, Some(config), Some(layers)) => Fetched::Manifest(Manifest { config, layers }),
        _ => {
            return Err(image_error(
                r,
                format!(
                    "has manifest {reference} of a kind labrun does not read ({})",
                    if media_type.is_empty() {
                        "no mediaType"
                    } else {
                        media_type
                    }
                ),
            ));
        }
    };
    Ok((fetched, actual))
}

/// The index entry for `platform`: same OS and architecture; among several (arm variants),
/// the first.
fn choose<'a>(entries: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (platform.variant.is_none() || p.variant == platform.variant)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, digest: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
        }
    }

    #[test]
    fn the_platform_is_picked_from_an_index() {
        let entries = [
            entry("linux", "arm64", "a"),
            entry("windows", "amd64", "w"),
            entry("linux", "amd64", "b"),
        ];
        let amd64 = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        assert_eq!(choose(&entries, &amd64).unwrap().digest, "b");
        let s390 = Platform {
            architecture: "s390x".into(),
            ..amd64
        };
        assert!(choose(&entries, &s390).is_none());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(this_platform().to_string(), "linux/amd64");
        }
    }
}
