//! A layer blob, streamed from the registry through its digest and size checks into the safe
//! unpacker: nothing is kept but the unpacked tree, and a blob whose bytes are not the ones
//! its digest names fails its layer's build (so the cache never keeps it).

use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::client::Client;
use super::manifest::Descriptor;
use super::{ImageError, OciRef, image_error, sha256_digest};
use crate::image::digest::HashingReader;
use crate::image::unpack::{UnpackOptions, Unpacked, unpack};

/// How a layer's tar stream is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// The compression a layer media type names, or why labrun cannot unpack it.
pub fn compression_of(media_type: &str) -> Result<Compression, String> {
    let base = media_type
        .strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
        .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.v1."));
    match (base, media_type) {
        (Some("tar"), _) => Ok(Compression::None),
        (Some("tar+gzip"), _)
        | (_, "application/vnd.docker.image.rootfs.diff.tar.gzip")
        | (_, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") => Ok(Compression::Gzip),
        (Some("tar+zstd"), _) => {
            Err("is compressed with zstd; labrun unpacks plain and gzip layers".into())
        }
        _ => Err(format!(
            "has media type '{media_type}', not a layer labrun unpacks"
        )),
    }
}

/// Fetches `layer` of image `r` and unpacks it into `dest` with `opts`, checking the blob's
/// size and SHA-256 against the manifest's descriptor. On a mismatch the error says so, even
/// when the bad bytes also broke the tar or gzip stream.
pub fn fetch_and_unpack(
    client: &mut Client,
    r: &OciRef,
    layer: &Descriptor,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked, ImageError> {
    let compression = compression_of(&layer.media_type)
        .map_err(|why| image_error(r, format!("layer {} {why}", layer.digest)))?;
    let want_hex = layer.digest.strip_prefix("sha256:").unwrap_or_default();
    let response = client.get(
        &format!("/v2/{}/blobs/{}", r.repository, layer.digest),
        "*/*",
        &format!("blob {}", layer.digest),
    )?;
    let body = response.into_body().into_reader().take(layer.size + 1);
    let mut raw = Counted {
        inner: HashingReader::new(io::BufReader::with_capacity(256 << 10, body)),
        bytes: 0,
    };
    let (unpacked, raw) = match compression {
        Compression::None => (unpack(&mut raw, dest, opts), raw),
        Compression::Gzip => {
            let mut gz = MultiGzDecoder::new(raw);
            (unpack(&mut gz, dest, opts), gz.into_inner())
        }
    };
    let (bytes, actual) = raw.finish().map_err(|e| {
        image_error(
            r,
            format!("cannot be pulled: reading layer {}: {e}", layer.digest),
        )
    })?;
    if bytes != layer.size || actual != want_hex {
        return Err(image_error(
            r,
            format!(
                "failed its digest check: layer {} arrived as {bytes} bytes with digest \
                 sha256:{actual} (the manifest says {} bytes)",
                layer.digest, layer.size
            ),
        ));
    }
    unpacked
}

/// Fetches a small blob (an image config), checked against its descriptor.
pub fn fetch_small(
    client: &mut Client,
    r: &OciRef,
    blob: &Descriptor,
) -> Result<Vec<u8>, ImageError> {
    let mut response = client.get(
        &format!("/v2/{}/blobs/{}", r.repository, blob.digest),
        "*/*",
        &format!("blob {}", blob.digest),
    )?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(super::client::SMALL_BODY_LIMIT)
        .read_to_vec()
        .map_err(|e| {
            image_error(
                r,
                format!("cannot be pulled: reading blob {}: {e}", blob.digest),
            )
        })?;
    let actual = sha256_digest(&bytes);
    if actual != blob.digest || bytes.len() as u64 != blob.size {
        return Err(image_error(
            r,
            format!(
                "failed its digest check: blob {} arrived as {} bytes with digest {actual}",
                blob.digest,
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Counts and hashes what passes through.
struct Counted<R> {
    inner: HashingReader<R>,
    bytes: u64,
}

impl<R: Read> Counted<R> {
    /// Reads what is left, then gives the byte count and the SHA-256 in hex.
    fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, self.inner.finish()))
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        for (mt, want) in [
            (
                "application/vnd.oci.image.layer.v1.tar",
                Ok(Compression::None),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Ok(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Ok(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Ok(Compression::Gzip),
            ),
        ] {
            assert_eq!(compression_of(mt), want, "{mt}");
        }
        assert!(
            compression_of("application/vnd.oci.image.layer.v1.tar+zstd")
                .unwrap_err()
                .contains("zstd")
        );
        assert!(
            compression_of("text/plain")
                .unwrap_err()
                .contains("'text/plain'")
        );
    }
}
