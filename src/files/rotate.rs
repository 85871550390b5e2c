//! The names of the logs and their copies (`port-<PORT>.json.<N>`,
//! `ndt7.json.<N>`), and the rotation itself, the same for both kinds of
//! log. Called only from the one write path ([`crate::files::log_dir::LogDir`]), under
//! its lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::history::ids::LogKey;

/// The name of `log`'s live file: `port-<PORT>.json` or `ndt7.json`.
pub fn file_name(log: LogKey) -> String {
    match log {
        LogKey::Port(port) => format!("port-{port}.json"),
        LogKey::Ndt7 => "ndt7.json".into(),
        LogKey::Probe => "probes.json".into(),
    }
}

/// The log and generation of a log file name: `port-<N>.json` and
/// `ndt7.json` are generation 0, `<name>.json.<G>` generation G (numbers
/// without sign or leading zeros; port 1..=65535, G ≥ 1).
pub fn log_name(name: &str) -> Option<(LogKey, u32)> {
    let (stem, generation) = match name.split_once(".json")? {
        (stem, "") => (stem, 0),
        (stem, tail) => {
            let g = tail.strip_prefix('.')?;
            let generation: u32 = g.parse().ok()?;
            (generation != 0 && generation.to_string() == g).then_some(())?;
            (stem, generation)
        }
    };
    match stem {
        "ndt7" => return Some((LogKey::Ndt7, generation)),
        "probes" => return Some((LogKey::Probe, generation)),
        _ => {}
    }
    let digits = stem.strip_prefix("port-")?;
    let port: u16 = digits.parse().ok()?;
    (port != 0 && port.to_string() == digits).then_some((LogKey::Port(port), generation))
}

/// The file of generation `generation` of the log at `live`.
pub fn generation_path(live: &Path, generation: u32) -> PathBuf {
    if generation == 0 {
        return live.to_path_buf();
    }
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".{generation}"));
    PathBuf::from(name)
}

/// Rotates `log` in directory `dir`: copies at generation `keep` or beyond
/// are deleted, the others move one generation up, and the live file
/// becomes generation 1 (with `keep` 0 it is deleted). Afterwards there is
/// no live file; the next append starts one.
pub fn rotate(dir: &Path, log: LogKey, keep: u32) -> io::Result<()> {
    let live = dir.join(file_name(log));
    let mut copies: Vec<u32> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| log_name(e.file_name().to_str()?))
        .filter(|&(l, g)| l == log && g > 0)
        .map(|(_, g)| g)
        .collect();
    copies.sort_unstable();
    for &g in copies.iter().filter(|&&g| g >= keep) {
        remove(&generation_path(&live, g))?;
    }
    for &g in copies.iter().rev().filter(|&&g| g < keep) {
        fs::rename(generation_path(&live, g), generation_path(&live, g + 1))?;
    }
    if keep == 0 {
        remove(&live)
    } else {
        fs::rename(&live, generation_path(&live, 1))
    }
}

/// Removes a file; one already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        let port = LogKey::Port;
        assert_eq!(log_name("port-5201.json"), Some((port(5201), 0)));
        assert_eq!(log_name("port-5201.json.1"), Some((port(5201), 1)));
        assert_eq!(log_name("port-65535.json.12"), Some((port(65535), 12)));
        assert_eq!(log_name("ndt7.json"), Some((LogKey::Ndt7, 0)));
        assert_eq!(log_name("ndt7.json.3"), Some((LogKey::Ndt7, 3)));
        assert_eq!(log_name("probes.json.2"), Some((LogKey::Probe, 2)));
        for log in [port(5201), LogKey::Ndt7, LogKey::Probe] {
            assert_eq!(log_name(&file_name(log)), Some((log, 0)));
        }
        for name in [
            "ndt7.json.0",
            "ndt7.json.1.tmp",
            "ndt7x.json",
            "port-ndt7.json",
            "port-0.json",
            "port-05201.json",
            "port-+1.json",
            "port-65536.json",
            "port-1.json~",
            "x-1.json",
            "port-5201.json.0",
            "port-5201.json.01",
            "port-5201.json.",
            "port-5201.json.1.tmp",
            "port-5201.jsonx",
        ] {
            assert_eq!(log_name(name), None, "{name}");
        }
    }

    fn names(dir: &Path) -> Vec<(String, String)> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                (name, fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_shifts_and_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("port-5201.json");
        let other = tmp.path().join("port-5202.json");
        fs::write(&other, "other").unwrap();
        let log = LogKey::Port(5201);
        for content in ["a", "b", "c", "d"] {
            fs::write(&live, content).unwrap();
            rotate(tmp.path(), log, 2).unwrap();
        }
        let pair = |n: &str, c: &str| (n.to_string(), c.to_string());
        assert_eq!(
            names(tmp.path()),
            vec![
                pair("port-5201.json.1", "d"),
                pair("port-5201.json.2", "c"),
                pair("port-5202.json", "other"),
            ]
        );
        // Copies beyond what is kept now (a smaller --keep-rotated) go.
        fs::write(generation_path(&live, 7), "old").unwrap();
        fs::write(&live, "e").unwrap();
        rotate(tmp.path(), log, 1).unwrap();
        assert_eq!(
            names(tmp.path()),
            vec![
                pair("port-5201.json.1", "e"),
                pair("port-5202.json", "other")
            ]
        );
        fs::write(&live, "f").unwrap();
        rotate(tmp.path(), log, 0).unwrap();
        assert_eq!(names(tmp.path()), vec![pair("port-5202.json", "other")]);
    }

    #[test]
    fn ndt7_rotates_apart_from_the_ports() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("ndt7.json");
        fs::write(tmp.path().join("port-5201.json.1"), "port").unwrap();
        for content in ["a", "b", "c"] {
            fs::write(&live, content).unwrap();
            rotate(tmp.path(), LogKey::Ndt7, 2).unwrap();
        }
        let pair = |n: &str, c: &str| (n.to_string(), c.to_string());
        assert_eq!(
            names(tmp.path()),
            vec![
                pair("ndt7.json.1", "c"),
                pair("ndt7.json.2", "b"),
                pair("port-5201.json.1", "port"),
            ]
        );
    }
}
