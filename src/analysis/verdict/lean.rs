//! The part of a logged entry the verdict reads, from the entry's text in
//! one pass: of the top-level object only `start`, `end` and `webperf3`
//! are built; every other member (a long test's `intervals`, an ndt7
//! subtest's measurements) is parsed with every check a full parse makes
//! (nesting depth included) and dropped. So a text this accepts is exactly a text that is one JSON
//! object, and the verdict costs memory for its own figures only.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

use crate::json::prune::Checked;
use crate::json::Json;

/// The top-level members the verdict reads (keep in step with
/// `evidence.rs`).
const READ: [&str; 3] = ["start", "end", "webperf3"];

/// `text` read as one JSON object, keeping only the members of [`READ`]
/// (in order, repeats kept, as [`Json`] keeps them). Refuses anything that
/// is not one valid JSON object.
pub fn read_lean(text: &str) -> serde_json::Result<Json> {
    let mut de = serde_json::Deserializer::from_str(text);
    let lean = de.deserialize_map(Lean)?;
    de.end()?;
    Ok(lean)
}

/// Builds the members of [`READ`] of one object.
struct Lean;

impl<'de> Visitor<'de> for Lean {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if READ.contains(&key.as_str()) {
                members.push((key, map.next_value::<Json>()?));
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(Json::Obj(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::verdict::judge_entry;

    const STOCK: &str = include_str!("../../../tests/fixtures/stock-3.12.json");

    #[test]
    fn the_verdict_of_a_lean_read_is_the_verdict_of_the_whole_entry() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(STOCK.as_bytes()).unwrap();
        let mut offsets = Vec::new();
        crate::files::reader::read_log_at(STOCK, crate::files::reader::Detail::Full, |at, _| {
            offsets.push(at as u64)
        });
        let mut judged = 0;
        for at in offsets {
            let entry = crate::files::entry::read_entry(&file, at).unwrap();
            let whole: Json = serde_json::from_str(&entry).unwrap();
            let lean = read_lean(&entry).unwrap();
            assert!(lean.get("intervals").is_none());
            assert_eq!(judge_entry(5201, &lean), judge_entry(5201, &whole));
            judged += 1;
        }
        assert!(judged > 0);
    }

    #[test]
    fn only_one_valid_object_is_accepted() {
        for bad in [
            "[]",
            "1",
            "\"x\"",
            "{",
            "{} {}",
            "{\"a\": [1,}",
            "{\"intervals\": [tru]}",
        ] {
            assert!(read_lean(bad).is_err(), "{bad}");
        }
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(read_lean(&deep).is_err(), "nesting past serde_json's limit");
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
        assert_eq!(read_lean(" {} ").unwrap(), Json::obj());
    }
}
