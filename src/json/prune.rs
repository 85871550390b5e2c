//! Reading a JSON value lean: building only the members a [`Keep`] names,
//! while parsing and checking everything else exactly as a full parse does
//! (so a lean read accepts and refuses the same texts). Knows nothing of
//! logs or summaries (what a summary keeps is the summary's `LEAN`).

use serde::Deserialize;
use serde_json::Value;

/// Which parts of a JSON value to build when reading it lean. Whatever is
/// left out is still parsed, with every check a full parse makes (number
/// range, escapes, nesting depth), only never built.
#[derive(Debug)]
pub enum Keep {
    /// The whole value.
    All,
    /// Of an object, only the members named, each kept as its [`Keep`]
    /// says; a name starting with `*` stands for every name ending in the
    /// rest. Any other value is kept whole.
    Members(&'static [(&'static str, Keep)]),
    /// Of an object, only the members named, whole. Any other value is kept
    /// whole.
    Named(&'static [&'static str]),
    /// Of an array, every element kept as the [`Keep`] says. Any other
    /// value is kept whole.
    Each(&'static Keep),
}

impl Keep {
    /// How to keep the member `name` of an object kept as `self`, if at all.
    fn member(&self, name: &str) -> Option<&'static Keep> {
        match self {
            Keep::Members(members) => members.iter().find_map(|(pattern, keep)| {
                let hit = match pattern.strip_prefix('*') {
                    Some(suffix) => name.ends_with(suffix),
                    None => name == *pattern,
                };
                hit.then_some(keep)
            }),
            Keep::Named(names) => names.contains(&name).then_some(&Keep::All),
            Keep::All | Keep::Each(_) => Some(&Keep::All),
        }
    }
}

/// Reads one value, building only what `Keep` says (serde seed and visitor).
#[derive(Clone, Copy)]
struct Pruned(&'static Keep);

impl<'de> serde::de::DeserializeSeed<'de> for Pruned {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::All => Value::deserialize(d),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    // Scalars as serde_json's own `Value` reads them.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let each = match self.0 {
            Keep::Each(each) => each,
            _ => &Keep::All,
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Pruned(each))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(member) = map.next_key_seed(MemberName(self.0))? {
            match member {
                // Duplicate names: the last one wins, as in a full parse.
                Some((name, keep)) => {
                    members.insert(name, map.next_value_seed(Pruned(keep))?);
                }
                None => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(Value::Object(members))
    }
}

/// Reads a member's name in an object kept as the [`Keep`] says: the name
/// and how to keep its value, or `None` for a member left out (whose name
/// is then never copied).
struct MemberName(&'static Keep);

impl<'de> serde::de::DeserializeSeed<'de> for MemberName {
    type Value = Option<(String, &'static Keep)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for MemberName {
    type Value = Option<(String, &'static Keep)>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.member(name).map(|keep| (name.to_string(), keep)))
    }
}

/// A value that is parsed and checked as a full parse would, and dropped.
/// (serde's `IgnoredAny` skips more leniently: numbers out of range, lone
/// surrogates and any depth pass.)
pub struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Checked)
    }
}

impl<'de> serde::de::Visitor<'de> for Checked {
    type Value = Checked;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Parses `text` as one value, building only what `keep` says.
pub fn parse_pruned(text: &str, keep: &'static Keep) -> serde_json::Result<Value> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Pruned(keep).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEEP: Keep = Keep::Members(&[
        ("a", Keep::Named(&["x"])),
        ("*_n", Keep::All),
        ("list", Keep::Each(&Keep::Named(&["k"]))),
    ]);

    #[test]
    fn only_the_named_members_are_built() {
        let text = r#"{"a":{"x":1,"y":2},"b":3,"one_n":[1],"list":[{"k":1,"j":2},5],"a":{"x":4}}"#;
        let value = parse_pruned(text, &KEEP).expect("valid");
        // Of repeated names the last wins, as in a full parse.
        assert_eq!(
            value,
            json!({"a": {"x": 4}, "one_n": [1], "list": [{"k": 1}, 5]})
        );
        assert_eq!(
            parse_pruned(text, &Keep::All).ok(),
            serde_json::from_str(text).ok()
        );
    }

    #[test]
    fn what_is_left_out_is_checked_as_a_full_parse_checks_it() {
        let deep = format!("{{\"b\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for bad in [
            r#"{"b":1e400}"#,
            r#"{"b":"\ud800"}"#,
            r#"{"b":[1,]}"#,
            r#"{"b":1} x"#,
            deep.as_str(),
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
            assert!(parse_pruned(bad, &KEEP).is_err(), "{bad}");
        }
    }
}
