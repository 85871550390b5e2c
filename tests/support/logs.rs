//! Reading iperf3 JSON logs in tests: strictly (nothing but whole JSON
//! objects, or the test fails), waiting for a number of entries,
//! splitting a stock log's text into its entries, and finding an entry by
//! its offset in a log or one of its rotated copies.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::wait::wait_until;

/// Parses a log strictly: it must be nothing but whole JSON objects. A
/// missing file is an empty log.
pub fn read_entries(path: &Path) -> Vec<Value> {
    parse_entries(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The entries of the log at `path`, or what is wrong with it: anything but
/// whole JSON objects, ending in `}` and a line break.
fn parse_entries(path: &Path) -> Result<Vec<Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => return Ok(Vec::new()),
    };
    let entries: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a clean log: {e}\n{text}", path.display()))?;
    if let Some(e) = entries.iter().find(|e| !e.is_object()) {
        return Err(format!("non-object in log: {e}"));
    }
    if !text.is_empty() && !text.ends_with("}\n") {
        return Err(format!(
            "{}: log does not end with an entry",
            path.display()
        ));
    }
    Ok(entries)
}

/// Waits (deadline 20 s) until the log at `path` holds `n` entries, and
/// returns them; more than `n` fails the test.
pub fn wait_entries(path: &Path, n: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    wait_until(
        Duration::from_secs(20),
        &format!("{n} entries in {}", path.display()),
        || {
            // A reader can see an entry still being appended (one write is
            // not atomic for readers): that is "not yet"; the last read
            // below is strict.
            entries = parse_entries(path).unwrap_or_default();
            entries.len() >= n
        },
    );
    let entries = read_entries(path);
    assert_eq!(entries.len(), n, "more log entries than expected");
    entries
}

/// The top-level objects of a stock log, each as its own text (from a `{`
/// line to its `}` line, ending `}\n`).
pub fn entry_texts(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in log.split_inclusive('\n') {
        if line.trim_end() == "{" {
            current = Some(String::new());
        }
        if let Some(text) = current.as_mut() {
            text.push_str(line);
            if line.trim_end() == "}" {
                out.push(current.take().unwrap_or_default());
            }
        }
    }
    out
}

/// The text of the pretty-printed entry at `offset` of the log named
/// `live` (`port-5201.json`, `ndt7.json`) in `dir` or one of its rotated
/// copies, where one starts there and parses as `entry`; with the name of
/// the file that holds it.
pub fn logged_entry(
    dir: &Path,
    live: &str,
    offset: usize,
    entry: &Value,
) -> Option<(String, String)> {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap_or_default();
        if !name.starts_with(live) {
            continue;
        }
        let log = std::fs::read_to_string(dir.join(&name)).unwrap();
        let Some(rest) = log.get(offset..) else {
            continue;
        };
        let Some(end) = rest.find("\n}\n") else {
            continue;
        };
        let text = &rest[..end + 2];
        if serde_json::from_str::<Value>(text).ok().as_ref() == Some(entry) {
            return Some((name, text.to_string()));
        }
    }
    None
}
