//! Registry authentication, the parts that are not HTTP: credentials from the Docker config
//! file, `WWW-Authenticate` challenges, and the token endpoint's request and answer.
//!
//! The config file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Its
//! `auths` map is keyed by registry, written `host[:port]` or as a URL (`https://host/v1/`;
//! Docker Hub's key is `https://index.docker.io/v1/`); an entry holds `auth`, the base64 of
//! `user:password`, or `username` and `password`. Credential helpers (`credsStore`,
//! `credHelpers`) are programs labrun does not run: their registries are named in the error
//! when the registry then refuses.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::ImageError;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization` header value of Basic auth.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Where the Docker config file is read from, by the environment.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// What the config file says about `registry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigEntry {
    pub credentials: Option<Credentials>,
    /// The registry's credentials are kept by a credential helper labrun does not run.
    pub helper: Option<String>,
}

/// Reads the config file's entry for `registry` (a missing file is no entry; a malformed one
/// is an error naming it).
pub fn config_entry(path: Option<&Path>, registry: &str) -> Result<ConfigEntry, ImageError> {
    let Some(path) = path else {
        return Ok(ConfigEntry::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigEntry::default()),
        Err(e) => return Err(ImageError::io_at(path, "reading", e)),
    };
    entry_in(&text, registry).map_err(|message| ImageError::Archive {
        archive: path.display().to_string(),
        message,
    })
}

/// The entry for `registry` in a config file's text.
pub fn entry_in(text: &str, registry: &str) -> Result<ConfigEntry, String> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let mut entry = ConfigEntry::default();
    if let Some(auths) = config.get("auths").and_then(|a| a.as_object()) {
        let found = auths
            .iter()
            .find(|(key, _)| normalise_key(key) == normalise_key(registry));
        if let Some((key, value)) = found {
            entry.credentials =
                credentials_of(value).map_err(|why| format!("auths.{key}: {why}"))?;
        }
    }
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.get(registry))
        .or_else(|| config.get("credsStore"))
        .and_then(|h| h.as_str());
    if entry.credentials.is_none() {
        entry.helper = helper.map(|h| format!("docker-credential-{h}"));
    }
    Ok(entry)
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000` → `host:5000`.
fn normalise_key(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

fn credentials_of(value: &serde_json::Value) -> Result<Option<Credentials>, String> {
    if let Some(auth) = value.get("auth").and_then(|a| a.as_str())
        && !auth.is_empty()
    {
        let decoded = STANDARD
            .decode(auth.trim())
            .map_err(|_| "'auth' is not base64".to_string())?;
        let decoded = String::from_utf8(decoded).map_err(|_| "'auth' is not UTF-8".to_string())?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("'auth' is not base64 of user:password")?;
        return Ok(Some(Credentials {
            username: user.into(),
            password: password.into(),
        }));
    }
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
    Ok(match (field("username"), field("password")) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ => None,
    })
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="https://auth/token",service="reg",scope="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(rest);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `k="v", k2=v2` with backslash escapes in quoted values.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
}

/// The token request's URL: the realm with `service` and `scope` added to its query.
pub fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(s) = service {
        url.push_str(&format!("{sep}service={}", percent_encode(s)));
        sep = '&';
    }
    url.push_str(&format!("{sep}scope={}", percent_encode(scope)));
    url
}

/// The token in a token endpoint's JSON answer (`token`, or OAuth2's `access_token`).
pub fn token_in(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .filter_map(|k| v.get(k).and_then(|t| t.as_str()))
        .find(|t| !t.is_empty())
        .map(str::to_string)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://auth.example/token\",service=\"reg\",scope=\"repository:a/b:pull\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn token_urls_and_answers() {
        assert_eq!(
            token_url(
                "http://127.0.0.1:1/t",
                Some("my reg"),
                "repository:a/b:pull"
            ),
            "http://127.0.0.1:1/t?service=my%20reg&scope=repository:a/b:pull"
        );
        assert_eq!(
            token_url("https://a/t?x=1", None, "s"),
            "https://a/t?x=1&scope=s"
        );
        assert_eq!(token_in(br#"{"token":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            token_in(br#"{"access_token":"xyz"}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(token_in(b"{}"), None);
    }

    #[test]
    fn docker_config_entries() {
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "127.0.0.1:5000": {"username": "u", "password": "p:w"},
            "bad.example": {"auth": "!!"}
        }, "credHelpers": {"ghcr.io": "gh"}}"#;
        let creds = |r: &str| entry_in(config, r).unwrap().credentials;
        assert_eq!(
            creds("docker.io"),
            Some(Credentials {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(creds("127.0.0.1:5000").unwrap().password, "p:w");
        assert_eq!(creds("other.example"), None);
        assert_eq!(
            entry_in(config, "ghcr.io").unwrap().helper.as_deref(),
            Some("docker-credential-gh")
        );
        let err = entry_in(config, "bad.example").unwrap_err();
        assert!(
            err.contains("auths.bad.example: 'auth' is not base64"),
            "{err}"
        );
        assert!(entry_in("{", "x").unwrap_err().starts_with("is not JSON"));
    }
}
