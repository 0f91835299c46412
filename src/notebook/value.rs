//! A small value tree that front matter (YAML) and annotations (JSON5 or YAML flow) are read
//! into, with a budget so YAML aliases cannot blow up time or memory.
//!
//! serde_yaml_ng limits alias jumps, but not the size of what one alias expands to: 32 KiB of
//! `&a [x, x, ...]` followed by 32 KiB of `*a` references is hundreds of millions of nodes.
//! Every node and string byte here is charged to a budget and reading stops when it is spent.
//! Nesting is bounded too, so the JSON5 parser (which recurses) cannot exhaust the stack.
//! This file knows nothing about labrun's keys.

use std::cell::Cell;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a node costs beside its string bytes: about the size of a `Value` and its map slot.
const NODE_COST: usize = 48;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    /// Entries in document order; keys are unique.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A short name of the value's type for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value of a key when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A scalar written as text (`1`, `true`, `x`), as environment values and limits need it.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// How much a document may expand to, and how deep it may nest.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of strings plus `NODE_COST` per node.
    pub budget: usize,
    pub depth: usize,
}

/// Reads one value from any serde deserializer within `limits`.
pub fn read<'de, D: Deserializer<'de>>(deserializer: D, limits: Limits) -> Result<Value, D::Error> {
    let budget = Cell::new(limits.budget);
    Seed {
        budget: &budget,
        depth: limits.depth,
    }
    .deserialize(deserializer)
}

/// Parses a YAML document (one document at most) into a `Value` within `limits`.
pub fn from_yaml(text: &str, limits: Limits) -> Result<Value, serde_yaml_ng::Error> {
    read(serde_yaml_ng::Deserializer::from_str(text), limits)
}

/// Parses a JSON5 text into a `Value` within `limits`; trailing characters are an error.
pub fn from_json5(text: &str, limits: Limits) -> Result<Value, json5::Error> {
    // `json5::from_str` is the only entry point that also rejects trailing characters, and it
    // takes a `Deserialize` type rather than a seed: hand it the limits through a thread-local.
    JSON5_LIMITS.with(|l| l.set(limits));
    json5::from_str::<Json5Value>(text).map(|v| v.0)
}

thread_local! {
    static JSON5_LIMITS: Cell<Limits> = const { Cell::new(Limits { budget: 0, depth: 0 }) };
}

struct Json5Value(Value);

impl<'de> serde::Deserialize<'de> for Json5Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read(deserializer, JSON5_LIMITS.with(Cell::get)).map(Json5Value)
    }
}

/// A YAML or JSON5 error message without the parser's own "at line 1 column 5" (relative to
/// the nested text, so misleading in a diagnostic that carries the notebook's position) and
/// without json5's capitalised "EOF".
pub fn clean_message(message: &str) -> String {
    static AT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r" at line \d+ column \d+").expect("valid regex"));
    AT.replace_all(message, "")
        .replace("EOF parsing", "unexpected end while parsing")
}

struct Seed<'b> {
    budget: &'b Cell<usize>,
    depth: usize,
}

impl Seed<'_> {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = NODE_COST.saturating_add(bytes);
        match self.budget.get().checked_sub(cost) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom("document expands to too much data (alias bomb?)")),
        }
    }

    fn nested<E: de::Error>(&self) -> Result<Seed<'_>, E> {
        if self.depth == 0 {
            return Err(E::custom("document nests too deeply"));
        }
        Ok(Seed {
            budget: self.budget,
            depth: self.depth - 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar, list or mapping")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested()?)? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key_seed(self.nested()?)? {
            let key = match key {
                Value::Null => String::new(),
                other => other.scalar_text().ok_or_else(|| {
                    de::Error::custom(format!(
                        "mapping keys must be plain text, not {}",
                        other.kind()
                    ))
                })?,
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key '{key}'")));
            }
            let value = map.next_value_seed(self.nested()?)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        budget: 1 << 20,
        depth: 32,
    };

    #[test]
    fn yaml_and_json5_read_the_same_tree() {
        let want = Value::Map(vec![
            ("type".into(), Value::Str("file".into())),
            ("n".into(), Value::Int(3)),
            (
                "l".into(),
                Value::Seq(vec![Value::Bool(true), Value::Float(0.5), Value::Null]),
            ),
        ]);
        assert_eq!(
            from_json5("{type:'file',n:3,l:[true,.5,null]}", LIMITS).unwrap(),
            want
        );
        assert_eq!(
            from_yaml("{type: file, n: 3, l: [true, 0.5, null]}", LIMITS).unwrap(),
            want
        );
    }

    #[test]
    fn duplicate_and_complex_keys_are_errors() {
        let err = from_yaml("a: 1\nb: 2\na: 3\n", LIMITS).unwrap_err();
        assert!(err.to_string().contains("duplicate key 'a'"), "{err}");
        let err = from_json5("{a: 1, a: 2}", LIMITS).unwrap_err();
        assert!(err.to_string().contains("duplicate key 'a'"), "{err}");
        let err = from_yaml("? [a]\n: 1\n", LIMITS).unwrap_err();
        assert!(
            err.to_string().contains("mapping keys must be plain text"),
            "{err}"
        );
        assert_eq!(
            from_yaml("1: a\ntrue: b\n", LIMITS).unwrap(),
            Value::Map(vec![
                ("1".into(), Value::Str("a".into())),
                ("true".into(), Value::Str("b".into()))
            ])
        );
    }

    #[test]
    fn json5_trailing_characters_are_an_error() {
        assert!(from_json5("{a: 1} x", LIMITS).is_err());
        assert!(from_json5("{a: 1}  ", LIMITS).is_ok());
        assert!(from_json5("3 4", LIMITS).is_err());
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // A quadratic expansion that serde_yaml_ng's own repetition limit lets through.
        let items = vec!["x"; 4000].join(",");
        let refs = vec!["*a"; 4000].join(",");
        let doc = format!("a: &a [{items}]\nb: [{refs}]\n");
        let start = std::time::Instant::now();
        let err = from_yaml(&doc, LIMITS).unwrap_err();
        assert!(err.to_string().contains("too much data"), "{err}");
        assert!(start.elapsed().as_secs() < 10);
        // The same document without the blow-up reads fine.
        assert!(from_yaml(&format!("a: &a [{items}]\nb: [*a]\n"), LIMITS).is_ok());
    }

    #[test]
    fn nesting_is_bounded_without_recursing_deeply() {
        let deep = "[".repeat(100_000);
        let err = from_json5(&deep, LIMITS).unwrap_err();
        assert!(err.to_string().contains("nests too deeply"), "{err}");
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_yaml(&deep, LIMITS).is_err());
        let ok = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert!(from_json5(&ok, LIMITS).is_ok());
    }
}
