//! Document settings: the `labrun:` mapping of the YAML front matter, or docable's setup
//! comment when there is no front matter, read into `Settings`.
//!
//! Only `labrun:` is labrun's; other top-level keys belong to other tools and are ignored.
//! Unknown keys under `labrun:` are warnings, wrong types are errors at their line:column.
//! The YAML is read into a bounded `Value` first (64 KiB of text, a budget for aliases), so
//! nothing here can be made slow or large by a hostile document.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::attrs::duration;
use super::model::{BackendKind, Diagnostic, RunMode, Settings, Target};
use super::source::Source;
use super::value::{self, Limits, Value};
use crate::units::parse_size;

/// Longest front matter (or docable setup comment) accepted, in bytes.
pub const MAX_LEN: usize = 64 * 1024;

/// What the YAML may expand to through aliases; a 64 KiB document without aliases stays far
/// below it.
const LIMITS: Limits = Limits {
    budget: 4 * 1024 * 1024,
    depth: 64,
};

/// The front matter block of a notebook: `---` lines around YAML at the very start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Byte range of the YAML text between the fences.
    pub yaml_start: usize,
    pub yaml_end: usize,
    /// Byte offset just after the closing fence's line: where the markdown starts.
    pub end: usize,
}

/// Finds the front matter. An opening `---` that is never closed is not front matter (it is a
/// thematic break, as CommonMark reads it), and gets a warning.
pub fn find(src: &Source) -> Result<(Option<Block>, Option<Diagnostic>), Diagnostic> {
    let text = &src.text;
    let Some(first_end) = fence_line_end(text, src.bom, "---") else {
        return Ok((None, None));
    };
    let mut line = 1;
    while line < src.lines.count() {
        let start = src.lines.start(line);
        if start >= text.len() {
            break;
        }
        let closes =
            fence_line_end(text, start, "---").or_else(|| fence_line_end(text, start, "..."));
        if let Some(end) = closes {
            if start - first_end > MAX_LEN {
                return Err(src.diag(src.bom, "front matter is larger than 64 KiB"));
            }
            let block = Block {
                yaml_start: first_end,
                yaml_end: start,
                end,
            };
            return Ok((Some(block), None));
        }
        line += 1;
    }
    let warning = src.diag(
        src.bom,
        "front matter opened here is never closed; the file is read as markdown from its start",
    );
    Ok((None, Some(warning)))
}

/// If the line at `start` is exactly `fence` (trailing blanks allowed), the offset after it.
fn fence_line_end(text: &str, start: usize, fence: &str) -> Option<usize> {
    let rest = text.get(start..)?;
    let line_len = rest.find('\n').map_or(rest.len(), |i| i + 1);
    let line = &rest[..line_len];
    let content = line.trim_end_matches(['\n', '\r', ' ', '\t']);
    (content == fence).then_some(start + line_len)
}

/// Reads the `labrun:` mapping of a front matter block.
pub fn read(src: &Source, block: Block) -> Result<(Settings, Vec<Diagnostic>), Diagnostic> {
    let yaml = &src.text[block.yaml_start..block.yaml_end];
    let doc = Yaml {
        src,
        yaml,
        base: block.yaml_start,
    };
    let root = value::from_yaml(yaml, LIMITS).map_err(|err| doc.syntax_error(&err))?;
    let (opening_line, _) = src.position(src.bom);
    let mut settings = Settings {
        line: opening_line,
        ..Settings::default()
    };
    let mut warnings = Vec::new();
    let labrun = match &root {
        Value::Null => return Ok((settings, warnings)),
        Value::Map(_) => root.get("labrun"),
        other => {
            return Err(src.diag(
                block.yaml_start,
                format!("front matter must be a yaml mapping, not {}", other.kind()),
            ));
        }
    };
    let entries = match labrun {
        None | Some(Value::Null) => return Ok((settings, warnings)),
        Some(Value::Map(entries)) => entries,
        Some(other) => {
            return Err(doc.error_at(
                &[Seg::Key("labrun")],
                format!("labrun: must be a mapping, not {}", other.kind()),
            ));
        }
    };
    for (key, value) in entries {
        apply(
            &doc,
            &mut settings,
            &[Seg::Key("labrun")],
            key,
            value,
            &mut warnings,
        )?;
    }
    Ok((settings, warnings))
}

/// One key of `labrun:` (or of one of its `targets:`, at `base`) into `Settings`.
fn apply(
    doc: &Yaml<'_>,
    settings: &mut Settings,
    base: &[Seg<'_>],
    key: &str,
    value: &Value,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let path = below(base, Seg::Key(key));
    let name = dotted(&path);
    let fail = |message: String| doc.error_at(&path, format!("{name}: {message}"));
    let text = |value: &Value| -> Result<String, Diagnostic> {
        match value {
            Value::Str(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::Str(_) => Err(fail("must not be empty".into())),
            other => Err(fail(format!("must be a string, not {}", other.kind()))),
        }
    };
    match key {
        "targets" | "run" | "timeout" | "total_timeout" if base.len() > 1 => {
            return Err(doc.key_error_at(
                &path,
                format!(
                    "{}: '{key}' is a setting of the whole notebook, not of one target",
                    dotted(base)
                ),
            ));
        }
        "backend" => {
            settings.backend = Some(match text(value)?.as_str() {
                "container" => BackendKind::Container,
                "vm" => BackendKind::Vm,
                "host" => BackendKind::Host,
                planned @ ("docker" | "podman") => {
                    return Err(fail(format!(
                        "backend '{planned}' is planned but not supported yet"
                    )));
                }
                other => {
                    return Err(fail(format!(
                        "unknown backend '{other}' (use container, vm or host)"
                    )));
                }
            });
        }
        "image" => settings.image = Some(text(value)?),
        "shell" => settings.shell = Some(text(value)?),
        "kernel" => settings.kernel = Some(text(value)?),
        "workdir" => {
            let dir = text(value)?;
            if !dir.starts_with('/') {
                return Err(fail(format!("'{dir}' must be an absolute path")));
            }
            settings.workdir = Some(dir);
        }
        "setup" => {
            settings.setup = match value {
                Value::Null => Vec::new(),
                Value::Str(step) => vec![step.clone()],
                Value::Seq(steps) => {
                    let mut out = Vec::with_capacity(steps.len());
                    for (i, step) in steps.iter().enumerate() {
                        match step {
                            Value::Str(s) => out.push(s.clone()),
                            other => {
                                return Err(doc.error_at(
                                    &below(&path, Seg::Index(i)),
                                    format!(
                                        "{name}: each step must be a string, not {}",
                                        other.kind()
                                    ),
                                ));
                            }
                        }
                    }
                    out
                }
                other => {
                    return Err(fail(format!(
                        "must be a list of steps, not {}",
                        other.kind()
                    )));
                }
            };
        }
        "env" => {
            let Value::Map(vars) = value else {
                return Err(fail(format!("must be a mapping, not {}", value.kind())));
            };
            for (var, val) in vars {
                let at = below(&path, Seg::Key(var));
                if let Err(why) = check_env_name(var) {
                    return Err(doc.key_error_at(&at, format!("{name}: {why}")));
                }
                let val = match val {
                    Value::Null => String::new(),
                    other => other.scalar_text().ok_or_else(|| {
                        doc.error_at(
                            &at,
                            format!("{name}.{var}: must be a string, not {}", other.kind()),
                        )
                    })?,
                };
                if val.contains('\0') {
                    return Err(doc.error_at(&at, format!("{name}.{var}: contains a nul byte")));
                }
                settings.env.insert(var.clone(), val);
            }
        }
        "timeout" => settings.timeout = Some(duration(value).map_err(fail)?),
        "total_timeout" => settings.total_timeout = Some(duration(value).map_err(fail)?),
        "network" => {
            let network = text(value)?;
            if network != "none" && network != "host" {
                return Err(fail(format!(
                    "unknown network '{network}' (use none or host)"
                )));
            }
            settings.network = Some(network);
        }
        "limits" => {
            let Value::Map(limits) = value else {
                return Err(fail(format!("must be a mapping, not {}", value.kind())));
            };
            for (limit, val) in limits {
                let at = below(&path, Seg::Key(limit));
                match check_limit(limit, val) {
                    Ok(Some(written)) => {
                        settings.limits.insert(limit.clone(), written);
                    }
                    Ok(None) => warnings.push(doc.key_error_at(
                        &at,
                        format!(
                            "unknown limit '{name}.{limit}' (known: memory, pids, disk, output, cpus); ignored"
                        ),
                    )),
                    Err(why) => {
                        return Err(doc.error_at(&at, format!("{name}.{limit}: {why}")));
                    }
                }
            }
        }
        "run" => {
            settings.run = match text(value)?.as_str() {
                "marked" => RunMode::Marked,
                "all" => RunMode::All,
                other => {
                    return Err(fail(format!(
                        "unknown run mode '{other}' (use marked or all)"
                    )));
                }
            };
        }
        "targets" if base.len() == 1 => {
            settings.targets = match value {
                Value::Null => Vec::new(),
                Value::Map(targets) => {
                    let mut read = Vec::with_capacity(targets.len());
                    for (target, config) in targets {
                        let at = below(&path, Seg::Key(target));
                        check_target_name(target)
                            .map_err(|why| doc.key_error_at(&at, format!("{name}: {why}")))?;
                        read.push(Target {
                            name: target.clone(),
                            settings: target_settings(doc, &at, config, warnings)?,
                        });
                    }
                    read
                }
                other => {
                    return Err(fail(format!(
                        "must be a mapping of target names, not {}",
                        other.kind()
                    )));
                }
            };
        }
        _ => warnings.push(doc.key_error_at(&path, format!("unknown setting '{name}'; ignored"))),
    }
    Ok(())
}

/// One target's own settings (`labrun.targets.NAME`, at `at`): what it sets overrides the
/// notebook's for that target.
fn target_settings(
    doc: &Yaml<'_>,
    at: &[Seg<'_>],
    config: &Value,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Settings, Diagnostic> {
    let mut settings = Settings::default();
    match config {
        Value::Null => {}
        Value::Map(entries) => {
            for (key, value) in entries {
                apply(doc, &mut settings, at, key, value, warnings)?;
            }
        }
        other => {
            return Err(doc.error_at(
                at,
                format!("{}: must be a mapping, not {}", dotted(at), other.kind()),
            ));
        }
    }
    Ok(settings)
}

/// `base` one step deeper.
fn below<'a>(base: &[Seg<'a>], next: Seg<'a>) -> Vec<Seg<'a>> {
    let mut path = base.to_vec();
    path.push(next);
    path
}

/// A path as a dotted name for messages: `labrun.targets.web.image`.
fn dotted(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) if out.is_empty() => out.push_str(key),
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Validates a known limit and returns it as written; `None` for an unknown limit.
fn check_limit(limit: &str, value: &Value) -> Result<Option<String>, String> {
    let written = value
        .scalar_text()
        .ok_or_else(|| format!("must be a number or a size, not {}", value.kind()))?;
    match limit {
        "memory" | "disk" | "output" => {
            if parse_size(&written)? == 0 {
                return Err("must be larger than zero".into());
            }
        }
        "pids" => match written.trim().parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("'{written}' must be a whole number above zero")),
        },
        "cpus" => match written.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => {}
            _ => return Err(format!("'{written}' must be a number above zero")),
        },
        _ => return Ok(None),
    }
    Ok(Some(written))
}

fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("'{name}' is not a valid variable name"))
    }
}

/// Target names become host names on the lab's network.
fn check_target_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid target name (letters, digits and '-', at most 63)"
        ))
    }
}

/// docable's setup comment (`<!-- setup: ... -->` or `<!-- targets: [...] -->`), mapped into
/// `Settings` as far as it maps. `inner` is the comment's text between `<!--` and `-->`,
/// starting at byte offset `base`. Returns `None` when the comment is not a setup block.
pub fn read_docable(
    src: &Source,
    base: usize,
    inner: &str,
    comment_start: usize,
) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut warnings = Vec::new();
    let looks_like_setup = inner.contains("setup:") || inner.contains("targets:");
    if !looks_like_setup {
        return (None, warnings);
    }
    if inner.len() > MAX_LEN {
        warnings.push(src.diag(
            comment_start,
            "html comment is larger than 64 KiB; not read as docable's setup",
        ));
        return (None, warnings);
    }
    let doc = Yaml {
        src,
        yaml: inner,
        base,
    };
    let root = match value::from_yaml(inner, LIMITS) {
        Ok(root) => root,
        Err(err) => {
            let e = doc.syntax_error(&err);
            warnings.push(Diagnostic {
                message: format!("{}; the comment is not read as docable's setup", e.message),
                ..e
            });
            return (None, warnings);
        }
    };
    let (setup, targets) = (root.get("setup"), root.get("targets"));
    if setup.is_none() && targets.is_none() {
        return (None, warnings);
    }
    let (line, _) = src.position(comment_start);
    let mut settings = Settings {
        line,
        ..Settings::default()
    };
    let mut warn = |path: &[Seg<'_>], message: String| warnings.push(doc.error_at(path, message));
    let mut chosen = false;
    if let Some(setup) = setup {
        match setup {
            Value::Map(entries) => {
                for (provider, config) in entries {
                    let path = [Seg::Key("setup"), Seg::Key(provider)];
                    match provider.as_str() {
                        "targets" => {
                            if let Value::Seq(list) = config {
                                for item in list {
                                    let name = item.get("ssh").and_then(|s| s.get("name"));
                                    if let Some(Value::Str(name)) = name {
                                        settings.targets.push(Target {
                                            name: name.clone(),
                                            settings: Settings::default(),
                                        });
                                    }
                                }
                            }
                        }
                        "git" | "clean" | "verify" => warn(
                            &path,
                            format!("docable setup '{provider}' is not supported; ignored"),
                        ),
                        _ if chosen => {}
                        _ => match docable_provider(provider, config) {
                            Some((backend, image)) => {
                                settings.backend = Some(backend);
                                settings.image = image;
                                chosen = true;
                            }
                            None => warn(
                                &path,
                                format!(
                                    "docable provider '{provider}' is not supported; labrun's defaults are used"
                                ),
                            ),
                        },
                    }
                }
            }
            other => warn(
                &[Seg::Key("setup")],
                format!(
                    "docable setup must be a mapping, not {}; ignored",
                    other.kind()
                ),
            ),
        }
    }
    if let Some(targets) = targets {
        match targets {
            Value::Seq(list) => {
                for (i, target) in list.iter().enumerate() {
                    let kind = match target.get("type") {
                        Some(Value::Str(kind)) => kind.as_str(),
                        _ => "",
                    };
                    let provider = docable_provider(kind, target);
                    if let Some(Value::Str(name)) = target.get("name") {
                        let mut own = Settings::default();
                        if let Some((backend, image)) = &provider {
                            own.backend = Some(*backend);
                            own.image = image.clone();
                        }
                        settings.targets.push(Target {
                            name: name.clone(),
                            settings: own,
                        });
                    }
                    if chosen {
                        continue;
                    }
                    match provider {
                        Some((backend, image)) => {
                            settings.backend = Some(backend);
                            settings.image = image;
                            chosen = true;
                        }
                        None => warn(
                            &[Seg::Key("targets"), Seg::Index(i)],
                            format!(
                                "docable target type '{kind}' is not supported; labrun's defaults are used"
                            ),
                        ),
                    }
                }
            }
            other => warn(
                &[Seg::Key("targets")],
                format!(
                    "docable targets must be a list, not {}; ignored",
                    other.kind()
                ),
            ),
        }
    }
    (Some(settings), warnings)
}

/// Section 1's mapping of docable's providers: `local` is the container backend on the `host`
/// image (not the bare host), `docker` with an image is a container from that OCI image, and
/// docable's VM providers are the vm backend.
fn docable_provider(provider: &str, config: &Value) -> Option<(BackendKind, Option<String>)> {
    match provider {
        "local" => Some((BackendKind::Container, Some("host".into()))),
        "docker" => {
            let image = match config.get("image") {
                Some(Value::Str(image)) if !image.trim().is_empty() => Some(image.clone()),
                _ => None,
            };
            Some((BackendKind::Container, image))
        }
        "bakerx" | "baker" | "ssh" | "slim" => Some((BackendKind::Vm, None)),
        _ => None,
    }
}

/// A YAML text inside the notebook, for errors that point at its keys and values.
struct Yaml<'a> {
    src: &'a Source,
    yaml: &'a str,
    /// Byte offset of the YAML text in the notebook.
    base: usize,
}

impl Yaml<'_> {
    fn syntax_error(&self, err: &serde_yaml_ng::Error) -> Diagnostic {
        let offset = err.location().map_or(0, |l| l.index().min(self.yaml.len()));
        let message = value::clean_message(&err.to_string());
        self.src
            .diag(self.base + offset, format!("invalid yaml: {message}"))
    }

    /// An error at the value found at `path`.
    fn error_at(&self, path: &[Seg<'_>], message: String) -> Diagnostic {
        self.at(path, false, message)
    }

    /// An error at the key that ends `path`.
    fn key_error_at(&self, path: &[Seg<'_>], message: String) -> Diagnostic {
        self.at(path, true, message)
    }

    fn at(&self, path: &[Seg<'_>], key: bool, message: String) -> Diagnostic {
        let offset = locate(self.yaml, path, key).unwrap_or(0);
        self.src.diag(self.base + offset, message)
    }
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Byte offset of the value (or key) at `path` in `yaml`.
///
/// serde gives no positions to visitors, but serde_yaml_ng places every error at the node
/// being read: walk to the node and fail there, and the error's location is the answer. Only
/// called for diagnostics, on a document already read within the limits.
fn locate(yaml: &str, path: &[Seg<'_>], key: bool) -> Option<usize> {
    let finder = Finder { path, key };
    match finder.deserialize(serde_yaml_ng::Deserializer::from_str(yaml)) {
        Ok(()) => None,
        Err(err) => err.location().map(|l| l.index()),
    }
}

struct Finder<'p, 'a> {
    path: &'p [Seg<'a>],
    /// Point at the key of the last step rather than its value.
    key: bool,
}

impl<'de> DeserializeSeed<'de> for Finder<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            return deserializer.deserialize_any(Here);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(Seg::Key(want)) = self.path.first().copied() else {
            return Ok(());
        };
        let last = self.path.len() == 1;
        while let Some(found) = map.next_key_seed(KeyProbe {
            want,
            fail: last && self.key,
        })? {
            if found {
                return map.next_value_seed(Finder {
                    path: &self.path[1..],
                    key: self.key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(Seg::Index(want)) = self.path.first().copied() else {
            return Ok(());
        };
        let mut i = 0;
        while i < want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
        seq.next_element_seed(Finder {
            path: &self.path[1..],
            key: self.key,
        })
        .map(|_| ())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Fails at whatever node it is asked to read, so the error carries that node's position.
struct Here;

impl Visitor<'_> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node being located")
    }
}

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Reads a mapping key and says whether it is the wanted one (failing there when asked).
struct KeyProbe<'a> {
    want: &'a str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("")
    }
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match (key == self.want, self.fail) {
            (true, true) => Err(E::custom("located")),
            (found, _) => Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(md: &str) -> Result<(Settings, Vec<Diagnostic>), Diagnostic> {
        let src = Source::decode(md.as_bytes()).unwrap();
        let (block, _) = find(&src)?;
        read(&src, block.expect("front matter"))
    }

    #[test]
    fn each_target_reads_its_own_settings_with_errors_at_its_keys() {
        let md = "---\nlabrun:\n  image: busybox\n  targets:\n    web:\n      image: debian:bookworm\n      limits: {memory: 256MiB}\n      env: {ROLE: web}\n    db:\n---\n";
        let (s, warnings) = settings(md).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.image.as_deref(), Some("busybox"));
        let web = &s.targets[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.settings.image.as_deref(), Some("debian:bookworm"));
        assert_eq!(web.settings.limits["memory"], "256MiB");
        assert_eq!(web.settings.env["ROLE"], "web");
        assert_eq!(s.targets[1].name, "db");
        assert_eq!(s.targets[1].settings.image, None);

        let bad = "---\nlabrun:\n  targets:\n    web:\n      timeout: 5s\n---\n";
        let e = settings(bad).unwrap_err();
        assert_eq!((e.line, e.column), (5, 7), "{e:?}");
        assert!(
            e.message
                .contains("labrun.targets.web: 'timeout' is a setting of the whole notebook"),
            "{}",
            e.message
        );
        let bad = "---\nlabrun:\n  targets:\n    web:\n      limits: {memory: lots}\n---\n";
        let e = settings(bad).unwrap_err();
        assert!(
            e.message.starts_with("labrun.targets.web.limits.memory:"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 5);
        let (_, warnings) =
            settings("---\nlabrun:\n  targets:\n    web: {imag: x}\n---\n").unwrap();
        assert!(
            warnings[0].message.contains("labrun.targets.web.imag"),
            "{warnings:?}"
        );
    }

    #[test]
    fn finds_the_block() {
        let cases: [(&str, Option<(&str, &str)>); 7] = [
            ("---\na: 1\n---\n# x\n", Some(("a: 1\n", "# x\n"))),
            ("---  \r\na: 1\r\n...\r\nrest", Some(("a: 1\r\n", "rest"))),
            ("\u{feff}---\na: 1\n---\n", Some(("a: 1\n", ""))),
            ("---\n---\n", Some(("", ""))),
            ("# x\n---\na: 1\n---\n", None),
            (" ---\na: 1\n---\n", None),
            ("----\na: 1\n----\n", None),
        ];
        for (md, want) in cases {
            let src = Source::decode(md.as_bytes()).unwrap();
            let (block, warning) = find(&src).unwrap();
            assert!(warning.is_none(), "{md:?}");
            let got = block.map(|b| (&md[b.yaml_start..b.yaml_end], &md[b.end..]));
            assert_eq!(got, want, "{md:?}");
        }
    }

    #[test]
    fn an_unclosed_block_is_markdown_with_a_warning() {
        let src = Source::decode(b"---\ntitle: x\n\n# Heading\n").unwrap();
        let (block, warning) = find(&src).unwrap();
        assert!(block.is_none());
        let warning = warning.unwrap();
        assert_eq!((warning.line, warning.column), (1, 1));
        assert!(warning.message.contains("never closed"));
    }

    #[test]
    fn size_is_capped_at_64_kib() {
        let big = format!("---\nnote: '{}'\n---\n", "x".repeat(MAX_LEN));
        let src = Source::decode(big.as_bytes()).unwrap();
        let err = find(&src).unwrap_err();
        assert!(err.message.contains("64 KiB"), "{err:?}");
        let fits = format!("---\nnote: '{}'\n---\n", "x".repeat(MAX_LEN - 20));
        assert!(settings(&fits).is_ok());
    }

    #[test]
    fn reads_the_labrun_mapping() {
        let md = "---\ntitle: Containers workshop\ntags: [a, b]\nlabrun:\n  backend: container\n  image: debian:bookworm\n  setup:\n    - mkdir -p /srv/app\n    - |\n      echo one\n      echo two\n  shell: bash\n  workdir: /lab\n  env: { LANG: C.UTF-8, N: 3 }\n  timeout: 30s\n  total_timeout: 10\n  network: none\n  limits: { memory: 512MiB, pids: 512, disk: 1GiB, output: 1MiB, cpus: 1.5 }\n  run: all\n  targets: { web: {image: busybox}, db: }\n  kernel: ./vmlinuz\n---\n";
        let (s, warnings) = settings(md).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.backend, Some(BackendKind::Container));
        assert_eq!(s.image.as_deref(), Some("debian:bookworm"));
        assert_eq!(s.setup, vec!["mkdir -p /srv/app", "echo one\necho two\n"]);
        assert_eq!(s.shell.as_deref(), Some("bash"));
        assert_eq!(s.workdir.as_deref(), Some("/lab"));
        assert_eq!(s.env.get("LANG").map(String::as_str), Some("C.UTF-8"));
        assert_eq!(s.env.get("N").map(String::as_str), Some("3"));
        assert_eq!(s.timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.total_timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.network.as_deref(), Some("none"));
        assert_eq!(s.limits.get("memory").map(String::as_str), Some("512MiB"));
        assert_eq!(s.limits.get("pids").map(String::as_str), Some("512"));
        assert_eq!(s.limits.get("cpus").map(String::as_str), Some("1.5"));
        assert_eq!(s.run, RunMode::All);
        let names: Vec<&str> = s.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["web", "db"]);
        assert_eq!(s.kernel.as_deref(), Some("./vmlinuz"));
        assert_eq!(s.line, 1);
    }

    #[test]
    fn no_labrun_key_means_defaults() {
        for md in [
            "---\ntitle: x\n---\n",
            "---\n---\n",
            "---\nlabrun:\n---\n",
            "---\n# only a comment\n---\n",
        ] {
            let (s, warnings) = settings(md).unwrap();
            assert!(warnings.is_empty());
            assert_eq!(
                (s.run, s.backend, s.setup.len()),
                (RunMode::Marked, None, 0),
                "{md}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_warnings_at_the_key() {
        let md = "---\nlabrun:\n  image: host\n  imagee: busybox\n  limits: { memory: 1GiB, swap: 1 }\n---\n";
        let (s, warnings) = settings(md).unwrap();
        assert_eq!(s.image.as_deref(), Some("host"));
        let got: Vec<(u32, u32, bool)> = warnings
            .iter()
            .map(|w| (w.line, w.column, w.message.contains("unknown")))
            .collect();
        assert_eq!(got, vec![(4, 3, true), (5, 27, true)], "{warnings:?}");
        assert!(warnings[0].message.contains("labrun.imagee"));
    }

    #[test]
    fn errors_point_at_the_value() {
        let cases = [
            (
                "---\nlabrun:\n  timeout: soon\n---\n",
                3,
                12,
                "labrun.timeout: invalid duration",
            ),
            (
                "---\nlabrun:\n  timeout: 0\n---\n",
                3,
                12,
                "longer than zero",
            ),
            ("---\nlabrun:\n  backend: docker\n---\n", 3, 12, "planned"),
            (
                "---\nlabrun:\n  backend: qemu\n---\n",
                3,
                12,
                "unknown backend 'qemu'",
            ),
            (
                "---\nlabrun:\n  image: [a]\n---\n",
                3,
                10,
                "must be a string, not a list",
            ),
            (
                "---\nlabrun:\n  setup:\n    - ok\n    - {a: 1}\n---\n",
                5,
                7,
                "each step must be a string",
            ),
            (
                "---\nlabrun:\n  limits:\n    memory: lots\n---\n",
                4,
                13,
                "labrun.limits.memory: invalid size",
            ),
            (
                "---\nlabrun:\n  env: {1A: x}\n---\n",
                3,
                9,
                "not a valid variable name",
            ),
            ("---\nlabrun:\n  run: some\n---\n", 3, 8, "unknown run mode"),
            (
                "---\nlabrun:\n  workdir: lab\n---\n",
                3,
                12,
                "absolute path",
            ),
            (
                "---\nlabrun:\n  network: bridge\n---\n",
                3,
                12,
                "unknown network",
            ),
            ("---\nlabrun: yes\n---\n", 2, 9, "labrun: must be a mapping"),
            ("---\n- a\n---\n", 2, 1, "must be a yaml mapping"),
            (
                "---\nlabrun: {targets: {'bad name': {}}}\n---\n",
                2,
                20,
                "not a valid target name",
            ),
        ];
        for (md, line, column, message) in cases {
            let err = settings(md).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{md}: {err:?}");
            assert!(err.message.contains(message), "{md}: {err:?}");
        }
    }

    #[test]
    fn invalid_yaml_is_an_error_inside_the_notebook() {
        let md = "\u{feff}---\r\ntitle: x\r\nlabrun:\r\n  image: [host\r\n---\r\n";
        let err = settings(md).unwrap_err();
        assert_eq!(err.line, 5, "{err:?}");
        assert!(err.message.starts_with("invalid yaml: "), "{err:?}");
        assert!(!err.message.contains(" at line "), "{err:?}");
        let err = settings("---\na: 1\n  b: 2\n---\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 4), "{err:?}");
        let err = settings("---\na: 1\na: 2\n---\n").unwrap_err();
        assert!(err.message.contains("duplicate key 'a'"), "{err:?}");
    }

    #[test]
    fn billion_laughs_is_rejected_fast() {
        let mut doc = String::from(
            "---\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            doc.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
        }
        doc.push_str("labrun: {image: host}\n---\n");
        let start = std::time::Instant::now();
        let err = settings(&doc).unwrap_err();
        assert!(
            err.message.contains("too much data") || err.message.contains("repetition limit"),
            "{err:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn docable_setup_comments() {
        type Want = Option<(Option<BackendKind>, Option<&'static str>, Vec<&'static str>)>;
        let cases: [(&str, Want); 7] = [
            (
                "<!-- \ntargets:\n    - type: docker\n      name: starter-notebook\n      image: node:12-buster\n-->",
                Some((
                    Some(BackendKind::Container),
                    Some("node:12-buster"),
                    vec!["starter-notebook"],
                )),
            ),
            (
                "<!--\nsetup:\n  local: {}\n-->",
                Some((Some(BackendKind::Container), Some("host"), vec![])),
            ),
            (
                "<!--\nsetup:\n  bakerx:\n    name: containers\n    image: alpine3.9-simple\n-->",
                Some((Some(BackendKind::Vm), None, vec![])),
            ),
            (
                "<!--\ntargets:\n  - type: slim\n    name: vm1\n  - type: docker\n    name: c1\n-->",
                Some((Some(BackendKind::Vm), None, vec!["vm1", "c1"])),
            ),
            ("<!-- a note about setup: nothing -->", None),
            ("<!-- just a comment -->", None),
            ("<!--\ntitle: x\n-->", None),
        ];
        for (comment, want) in cases {
            let src = Source::decode(comment.as_bytes()).unwrap();
            let inner = &comment[4..comment.len() - 3];
            let (got, _) = read_docable(&src, 4, inner, 0);
            let got = got.map(|s| {
                let names: Vec<String> = s.targets.into_iter().map(|t| t.name).collect();
                (s.backend, s.image, names)
            });
            let want = want.map(|(b, i, t)| {
                (
                    b,
                    i.map(String::from),
                    t.into_iter().map(String::from).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, want, "{comment}");
        }
    }

    #[test]
    fn docable_targets_become_machines_with_their_own_backend_and_image() {
        let comment = "<!--\ntargets:\n  - type: docker\n    name: web\n    image: nginx:1.27\n  - type: local\n    name: client\n-->";
        let src = Source::decode(comment.as_bytes()).unwrap();
        let (got, _) = read_docable(&src, 4, &comment[4..comment.len() - 3], 0);
        let targets = got.unwrap().targets;
        let seen: Vec<(&str, Option<BackendKind>, Option<&str>)> = targets
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.settings.backend,
                    t.settings.image.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("web", Some(BackendKind::Container), Some("nginx:1.27")),
                ("client", Some(BackendKind::Container), Some("host")),
            ]
        );
    }

    #[test]
    fn docable_comments_that_do_not_map_warn() {
        let comment = "<!--\nsetup:\n  vagrant: {}\n-->";
        let src = Source::decode(comment.as_bytes()).unwrap();
        let (got, warnings) = read_docable(&src, 4, &comment[4..comment.len() - 3], 0);
        assert_eq!(got.unwrap().backend, None);
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            (warnings[0].line, warnings[0].column),
            (3, 12),
            "{warnings:?}"
        );
        let comment = "<!--\nsetup: [unclosed\n-->";
        let src = Source::decode(comment.as_bytes()).unwrap();
        let (got, warnings) = read_docable(&src, 4, &comment[4..comment.len() - 3], 0);
        assert!(got.is_none());
        assert!(warnings[0].message.contains("not read as docable's setup"));
    }
}
