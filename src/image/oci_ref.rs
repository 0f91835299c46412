//! OCI image references (`alpine:3.19`, `ghcr.io/o/app@sha256:...`), parsed and normalised
//! the way Docker reads them, so that a fetcher has a registry, a repository and a tag or
//! digest to ask for.
//!
//! Grammar (after the distribution project's reference grammar):
//! `[registry/]path[:tag][@algorithm:hex]`. The first `/`-separated part is a registry when it
//! has a `.` or a `:` or is `localhost`; otherwise the registry is `docker.io`, and a
//! one-part path there gets Docker's `library/` prefix. Path parts are lowercase
//! alphanumerics joined by `.`, `_`, `__` or runs of `-`.

use std::fmt;

/// The registry a reference without one means.
pub const DEFAULT_REGISTRY: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/alpine`, `owner/app`.
    pub repository: String,
    /// The tag as written; none when the reference gave none.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

impl OciRef {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<OciRef, String> {
        if text.is_empty() {
            return Err("it is empty".into());
        }
        if text.len() > 255 + 128 + 80 {
            return Err("it is too long".into());
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (text, None),
        };
        // A tag is after the last ':' that follows the last '/' (a registry's port is before).
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(parse_tag(&name_tag[at + 1..])?))
            }
            None => (name_tag, None),
        };
        if name.len() > 255 {
            return Err("its name is longer than 255 characters".into());
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_registry_like(first) => {
                check_registry(first)?;
                (first.to_string(), rest)
            }
            _ => (DEFAULT_REGISTRY.to_string(), name),
        };
        for part in path.split('/') {
            check_path_part(part)?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(OciRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag a fetcher asks for: the one given, else `latest` (unless a digest pins it).
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        }
    }
}

/// The full, normalised form: `docker.io/library/alpine:latest`.
impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = self.tag_or_latest() {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_registry_like(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn check_registry(reg: &str) -> Result<(), String> {
    let bad = || Err(format!("'{reg}' is not a registry host[:port]"));
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return bad();
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return bad();
        }
        match after {
            "" => return Ok(()),
            p => match p.strip_prefix(':') {
                Some(port) => ("", port),
                None => return bad(),
            },
        }
    } else {
        match reg.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (reg, ""),
        }
    };
    if reg.contains(':') && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit())) {
        return bad();
    }
    if !host.is_empty() || !reg.starts_with('[') {
        let labels_ok = host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
        if !labels_ok {
            return bad();
        }
    }
    Ok(())
}

fn check_path_part(part: &str) -> Result<(), String> {
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && {
        let mut ok = true;
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: '.', '_', '__' or a run of '-', between alphanumerics.
            let start = i;
            match b[i] {
                b'.' => i += 1,
                b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => {
                    ok = false;
                    break;
                }
            }
            if i == start || !b.get(i).copied().is_some_and(alnum) {
                ok = false;
                break;
            }
        }
        ok
    };
    if ok {
        Ok(())
    } else if part.is_empty() {
        Err("it has an empty path component".into())
    } else {
        Err(format!(
            "'{part}' is not a repository name (lowercase letters, digits, and . _ __ - between them)"
        ))
    }
}

fn parse_tag(tag: &str) -> Result<String, String> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(tag.to_string())
    } else {
        Err(format!(
            "'{tag}' is not a tag (letters, digits, _ . -, at most 128)"
        ))
    }
}

fn parse_digest(d: &str) -> Result<String, String> {
    let bad = || format!("'{d}' is not a digest (algorithm:hex, as sha256:...)");
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    let sha_ok = match alg {
        "sha256" => hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "sha512" => hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        _ => true,
    };
    if alg_ok && hex_ok && sha_ok {
        Ok(d.to_string())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        OciRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(full("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(full("owner/app:v1"), "docker.io/owner/app:v1");
        assert_eq!(
            full("docker.io/library/debian:bookworm"),
            "docker.io/library/debian:bookworm"
        );
    }

    #[test]
    fn registries_ports_and_digests() {
        let r = OciRef::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let r = OciRef::parse("localhost/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "app")
        );
        let r = OciRef::parse("localhost:5000/app").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag, None);
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = OciRef::parse(&format!("ghcr.io/o/app@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag_or_latest(), None);
        assert_eq!(r.to_string(), format!("ghcr.io/o/app@{d}"));
        let r = OciRef::parse("[::1]:5000/app:x").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(
            full("a__b/c-d--e/f.g_h"),
            "docker.io/a__b/c-d--e/f.g_h:latest"
        );
    }

    #[test]
    fn malformed_references_say_why() {
        for (text, says) in [
            ("Alpine", "'Alpine' is not a repository name"),
            ("alpine:", "'' is not a tag"),
            ("alpine:-x", "'-x' is not a tag"),
            ("a//b", "empty path component"),
            ("alpine@sha256:123", "is not a digest"),
            ("a_-b", "'a_-b' is not a repository name"),
            ("a___b", "is not a repository name"),
            ("-a", "is not a repository name"),
            ("reg.io:x/app", "is not a registry"),
            ("", "empty"),
        ] {
            let err = OciRef::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
