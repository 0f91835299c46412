//! What an OCI image's config says about how its processes run: `Env`, `WorkingDir` and
//! `User`. The rest of the config (entrypoint, command, ports, volumes) means nothing to a lab,
//! whose commands come from its notebook.

use serde_json::Value;

/// The parts of an image's config a lab's shells start with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `Env`, in the config's order (a later entry for the same name wins).
    pub env: Vec<(String, String)>,
    /// `WorkingDir`, an absolute path.
    pub workdir: Option<String>,
    /// `User`, as the config spells it (a name, a uid, `uid:gid`).
    pub user: Option<String>,
}

impl RunConfig {
    /// Reads an image config blob. An entry labrun could not honour as written is an error
    /// that names it.
    pub fn parse(bytes: &[u8]) -> Result<RunConfig, String> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("has a config that is not JSON: {e}"))?;
        let Some(config) = doc.get("config").filter(|c| !c.is_null()) else {
            return Ok(RunConfig::default());
        };
        let mut parsed = RunConfig::default();
        if let Some(env) = config.get("Env").filter(|e| !e.is_null()) {
            let entries = env
                .as_array()
                .ok_or("has a config whose Env is not a list of strings")?;
            for entry in entries {
                let text = entry
                    .as_str()
                    .ok_or_else(|| format!("has a config whose Env holds {entry}, not a string"))?;
                parsed.env.push(env_entry(text)?);
            }
        }
        parsed.workdir = text_field(config, "WorkingDir")?;
        if let Some(dir) = &parsed.workdir
            && !dir.starts_with('/')
        {
            return Err(format!(
                "has a config whose WorkingDir '{dir}' is not an absolute path"
            ));
        }
        parsed.user = text_field(config, "User")?;
        Ok(parsed)
    }

    /// Whether the config says nothing labrun applies.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.workdir.is_none() && self.user.is_none()
    }

    /// The config as text that changes whenever it does (for the keys of layers built on it).
    pub fn identity(&self) -> String {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "env {:?} workdir {:?} user {:?}",
            env, self.workdir, self.user
        )
    }
}

/// `NAME=VALUE`. A name a shell cannot hold as a variable (`spring.profiles.active`) is
/// still passed on in the environment, as Docker does.
fn env_entry(text: &str) -> Result<(String, String), String> {
    let bad = || format!("has a config whose Env entry '{text}' is not NAME=VALUE");
    let (name, value) = text.split_once('=').ok_or_else(bad)?;
    if name.is_empty() || text.contains('\0') {
        return Err(bad());
    }
    Ok((name.to_string(), value.to_string()))
}

/// A string field; absent, null and empty all mean none.
fn text_field(config: &Value, name: &str) -> Result<Option<String>, String> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => {
            Err(format!("has a config whose {name} holds a NUL byte"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "has a config whose {name} is {other}, not a string"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_workdir_and_user_are_read_and_the_rest_ignored() {
        let config = br#"{"architecture": "amd64", "config": {
            "Env": ["PATH=/opt/tool/bin:/usr/bin", "GREETING=hello=world", "EMPTY=",
                    "spring.profiles.active=lab"],
            "WorkingDir": "/srv/app", "User": "1000:1000",
            "Entrypoint": ["/bin/app"], "ExposedPorts": {"80/tcp": {}}}}"#;
        let parsed = RunConfig::parse(config).unwrap();
        assert_eq!(
            parsed.env,
            vec![
                ("PATH".into(), "/opt/tool/bin:/usr/bin".into()),
                ("GREETING".into(), "hello=world".into()),
                ("EMPTY".into(), String::new()),
                ("spring.profiles.active".into(), "lab".into()),
            ]
        );
        assert_eq!(parsed.workdir.as_deref(), Some("/srv/app"));
        assert_eq!(parsed.user.as_deref(), Some("1000:1000"));
        assert!(!parsed.is_empty());
    }

    #[test]
    fn a_config_without_run_settings_is_empty() {
        for config in [
            &br#"{"architecture": "amd64"}"#[..],
            br#"{"config": null}"#,
            br#"{"config": {"Env": null, "WorkingDir": "", "User": ""}}"#,
        ] {
            assert!(RunConfig::parse(config).unwrap().is_empty());
        }
    }

    #[test]
    fn entries_labrun_cannot_honour_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not JSON"),
            (br#"{"config": {"Env": "A=1"}}"#, "not a list"),
            (br#"{"config": {"Env": ["JUSTANAME"]}}"#, "'JUSTANAME'"),
            (br#"{"config": {"Env": ["=2"]}}"#, "'=2'"),
            (
                br#"{"config": {"WorkingDir": "app"}}"#,
                "'app' is not an absolute path",
            ),
            (br#"{"config": {"User": 1000}}"#, "User is 1000"),
        ];
        for (config, expected) in cases {
            let err = RunConfig::parse(config).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
