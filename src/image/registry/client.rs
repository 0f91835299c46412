//! HTTP to one registry for one image: the scheme, the credentials, and errors that say
//! what went wrong in the user's terms.
//!
//! HTTPS always, with the roots of `tls`; a loopback registry (`localhost`, `127.0.0.0/8`,
//! `[::1]`) that does not speak TLS is spoken to in plain HTTP, as Docker allows. Each request
//! goes out with the credentials known so far; a 401 answers with a challenge, which is met
//! once (Basic: the config file's credentials; Bearer: a token from the challenge's realm,
//! asked with those credentials when there are any) before the request is sent again.
//! Redirects (blob storage elsewhere) are followed without the `Authorization` header.

use std::time::Duration;

use ureq::Agent;
use ureq::http::Response;
use ureq::tls::TlsConfig;

use super::auth::{self, Challenge, ConfigEntry};
use super::{ImageError, OciRef, Settings, image_error, tls};

/// The most bytes of a manifest, index or token answer read.
pub const SMALL_BODY_LIMIT: u64 = 4 << 20;

/// Clones share the connection pool and the credentials found so far (layers are fetched by
/// several threads).
#[derive(Clone)]
pub struct Client {
    image: OciRef,
    agent: Agent,
    /// `host[:port]` requests go to (Docker Hub's API host for `docker.io`).
    host: String,
    loopback: bool,
    /// `https` or `http`, once a request has told which.
    scheme: Option<&'static str>,
    /// The `Authorization` header value in use.
    authorization: Option<String>,
    config: ConfigEntry,
    settings: Settings,
}

impl Client {
    pub fn new(image: &OciRef, settings: &Settings) -> Result<Client, ImageError> {
        let tls = TlsConfig::builder()
            .root_certs(tls::roots_for(&image.registry, &settings.certs_d)?)
            .build();
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A registry that stops sending mid-blob fails the pull instead of hanging it.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("labrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let host = match image.registry.as_str() {
            "docker.io" => "registry-1.docker.io".to_string(),
            other => other.to_string(),
        };
        Ok(Client {
            loopback: is_loopback(&host),
            image: image.clone(),
            agent,
            host,
            scheme: None,
            authorization: None,
            config: auth::config_entry(settings.docker_config.as_deref(), &image.registry)?,
            settings: settings.clone(),
        })
    }

    /// GETs `path` (`/v2/...`) with `accept`, meeting one auth challenge. Any answer but a
    /// 2xx is an error naming `what` ("manifest 3.20", "blob sha256:...").
    pub fn get(
        &mut self,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<Response<ureq::Body>, ImageError> {
        let mut response = self.send(path, accept)?;
        if response.status() == 401 {
            let challenge = header(&response, "www-authenticate");
            self.meet(challenge.as_deref())?;
            response = self.send(path, accept)?;
            if response.status() == 401 {
                return Err(self.refused());
            }
        }
        match response.status().as_u16() {
            200..=299 => Ok(response),
            status => Err(self.status_error(status, response, what)),
        }
    }

    fn send(&mut self, path: &str, accept: &str) -> Result<Response<ureq::Body>, ImageError> {
        let scheme = self.scheme.unwrap_or("https");
        match self.send_with(scheme, path, accept) {
            Ok(r) => {
                self.scheme = Some(scheme);
                Ok(r)
            }
            Err(e) if self.scheme.is_none() && self.loopback && !refused(&e) => {
                let r = self
                    .send_with("http", path, accept)
                    .map_err(|plain| self.unreachable(&e, Some(&plain)))?;
                // 400 to plain HTTP: the server speaks TLS, and the TLS error is the one.
                if r.status() == 400 {
                    return Err(self.unreachable(&e, None));
                }
                self.scheme = Some("http");
                Ok(r)
            }
            Err(e) => Err(self.unreachable(&e, None)),
        }
    }

    fn send_with(
        &self,
        scheme: &str,
        path: &str,
        accept: &str,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut request = self
            .agent
            .get(format!("{scheme}://{}{path}", self.host))
            .header("Accept", accept);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        request.call()
    }

    /// Sets `authorization` from a 401's challenge.
    fn meet(&mut self, challenge: Option<&str>) -> Result<(), ImageError> {
        let creds = self.config.credentials.clone();
        match challenge.and_then(auth::parse_challenge) {
            Some(Challenge::Basic) => {
                let creds = creds.ok_or_else(|| self.refused())?;
                self.authorization = Some(creds.basic_header());
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull", self.image.repository));
                let url = auth::token_url(&realm, service.as_deref(), &scope);
                if url.starts_with("http://") && creds.is_some() && !realm_is_loopback(&realm) {
                    return Err(image_error(
                        &self.image,
                        format!(
                            "the registry's token endpoint {realm} is plain HTTP: labrun does not send credentials there"
                        ),
                    ));
                }
                let token = self.token(&url, creds.as_ref())?;
                self.authorization = Some(format!("Bearer {token}"));
            }
            None => {
                return Err(image_error(
                    &self.image,
                    format!(
                        "needs authentication of a kind labrun does not speak ({})",
                        challenge.unwrap_or("no WWW-Authenticate header")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn token(&self, url: &str, creds: Option<&auth::Credentials>) -> Result<String, ImageError> {
        let mut request = self.agent.get(url);
        if let Some(c) = creds {
            request = request.header("Authorization", c.basic_header());
        }
        let mut response = request.call().map_err(|e| {
            image_error(
                &self.image,
                format!("cannot get a token from the registry's token endpoint {url}: {e}"),
            )
        })?;
        match response.status().as_u16() {
            200..=299 => {}
            401 | 403 => return Err(self.refused()),
            status => {
                return Err(image_error(
                    &self.image,
                    format!("the registry's token endpoint {url} answered HTTP {status}"),
                ));
            }
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| image_error(&self.image, format!("reading a token from {url}: {e}")))?;
        auth::token_in(&body).ok_or_else(|| {
            image_error(
                &self.image,
                format!("the registry's token endpoint {url} answered without a token"),
            )
        })
    }

    fn refused(&self) -> ImageError {
        let config = (self.settings.docker_config.as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.docker/config.json".into());
        let problem = match (&self.config.credentials, &self.config.helper) {
            (Some(c), _) => format!(
                "cannot be pulled: the registry {} refused the credentials of user '{}' (from {config})",
                self.image.registry, c.username
            ),
            (None, Some(helper)) => format!(
                "cannot be pulled: the registry {} wants credentials, which {config} leaves to \
                 {helper}, a credential helper labrun does not run (put an \"auth\" entry there)",
                self.image.registry
            ),
            (None, None) => format!(
                "cannot be pulled: the registry {} wants credentials and {config} has none for it \
                 (docker login {0}, or an \"auths\" entry)",
                self.image.registry
            ),
        };
        image_error(&self.image, problem)
    }

    fn unreachable(&self, e: &ureq::Error, plain: Option<&ureq::Error>) -> ImageError {
        let mut problem = format!(
            "cannot be pulled: registry {} is unreachable: {}",
            self.image.registry,
            describe(e)
        );
        if let Some(p) = plain {
            problem.push_str(&format!(" (and over plain HTTP: {})", describe(p)));
        }
        if problem.contains("certificate") {
            let dirs: Vec<String> = (self.settings.certs_d.iter())
                .map(|d| format!("{}/{}/", d.display(), self.image.registry))
                .collect();
            problem.push_str(&format!(
                "; labrun trusts the system's roots and the *.crt files in {}",
                dirs.join(" and ")
            ));
        }
        image_error(&self.image, problem)
    }

    fn status_error(
        &self,
        status: u16,
        mut response: Response<ureq::Body>,
        what: &str,
    ) -> ImageError {
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        let said = registry_message(&body)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let problem = match status {
            404 => format!(
                "was not found: registry {} has no {what}{said}",
                self.image.registry
            ),
            403 => format!(
                "cannot be pulled: registry {} denies access to {what}{said}",
                self.image.registry
            ),
            s => format!(
                "cannot be pulled: registry {} answered HTTP {s} for {what}{said}",
                self.image.registry
            ),
        };
        image_error(&self.image, problem)
    }
}

/// A response header as text.
pub fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The first message of a registry's JSON error answer (`{"errors":[{"code","message"}]}`).
fn registry_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = v.get("errors")?.get(0)?;
    let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}"))
}

/// Whether `host[:port]` names this machine's loopback.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn realm_is_loopback(realm: &str) -> bool {
    let rest = realm.split_once("://").map_or(realm, |(_, r)| r);
    is_loopback(rest.split('/').next().unwrap_or(""))
}

/// Nothing listens there: no point trying plain HTTP.
fn refused(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        _ => false,
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens there)".into()
        }
        ureq::Error::HostNotFound => "its host name does not resolve".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:80",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "ghcr.io",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        assert!(realm_is_loopback("http://127.0.0.1:9/token"));
        assert!(!realm_is_loopback("http://auth.example/token"));
    }

    #[test]
    fn registry_errors_are_read() {
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            )
            .as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(registry_message(b"<html>"), None);
    }
}
