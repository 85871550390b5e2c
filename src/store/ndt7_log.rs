//! `<log-dir>/ndt7.json`: every finished ndt7 subtest, one pretty-printed
//! result document ([`crate::ndt7::record::Record`]) per subtest, each
//! appended with one write (the same write path as the iperf3 logs), and
//! read back at start-up into result objects (`"protocol": "ndt7"`).
//!
//! A result's id is `ndt7-<filekey>-<offset>`: the start (unix seconds) of
//! the file's first subtest and the byte offset of the entry's `{`, so it
//! stays the same after a restart.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use super::log::{append_to, LogDir, Recorded};
use super::reader::{read_log_each, Detail, LogItem};
use super::result::TestResult;
use crate::ndt7::record::Record;
use crate::ndt7::Kind;

/// The file name of the ndt7 log in the log directory.
pub const NDT7_LOG: &str = "ndt7.json";

/// The `protocol` of ndt7 results.
pub const PROTOCOL: &str = "ndt7";

/// The result object of a subtest's document, named `id`; `None` if the
/// document holds no subtest or no readable start time. The port is the
/// server port the document names (the dashboard's).
pub fn result_of(record: &Record, id: String) -> Option<TestResult> {
    let f = record.figures()?;
    let (send_bps, receive_bps, bytes_sent, bytes_received) = match f.kind {
        Kind::Download => (f.bps, None, f.bytes, 0),
        Kind::Upload => (None, f.bps, 0, f.bytes),
    };
    Some(TestResult {
        id,
        port: record.server_port,
        timestamp: f.timestamp,
        name: f.name,
        title: None,
        client: Some(f.client),
        protocol: PROTOCOL.into(),
        duration: f.seconds,
        streams: 1,
        reverse: false,
        bidir: false,
        send_bps,
        receive_bps,
        bytes_sent,
        bytes_received,
        retransmits: None,
        jitter_ms: None,
        lost_percent: None,
        min_rtt_ms: f.min_rtt_ms,
        error: f.error,
        overlapped: Some(f.overlapped),
        server_cpu_percent: None,
        cpu_temp_c: None,
        throttled: None,
    })
}

fn id(filekey: i64, offset: u64) -> String {
    format!("ndt7-{filekey}-{offset}")
}

impl LogDir {
    /// The ndt7 log.
    pub fn ndt7_path(&self) -> PathBuf {
        self.dir().join(NDT7_LOG)
    }

    /// Appends one finished subtest's document to the ndt7 log with a
    /// single write and returns its result (shown even if the write failed).
    pub fn record_ndt7(&self, record: &Record) -> Recorded {
        let own = record.timestamp().unwrap_or_default();
        let written = append_to(&self.ndt7_path(), &record.to_text());
        let id = match &written {
            Ok(0) => id(own, 0),
            Ok(offset) => id(self.ndt7_filekey().unwrap_or(own), *offset),
            Err(_) => String::new(),
        };
        Recorded {
            result: result_of(record, id),
            written: written.map(drop),
            rotated: None,
        }
    }

    /// The start of the ndt7 log's first subtest: read from the head of the
    /// file, where our documents write `StartTime` (after the addresses).
    fn ndt7_filekey(&self) -> Option<i64> {
        let mut head = String::new();
        fs::File::open(self.ndt7_path())
            .ok()?
            .take(4096)
            .read_to_string(&mut head)
            .ok()?;
        let start = head.find("\"StartTime\": \"")? + "\"StartTime\": \"".len();
        let end = start + head.get(start..)?.find('"')?;
        chrono::DateTime::parse_from_rfc3339(head.get(start..end)?)
            .ok()
            .map(|t| t.timestamp())
    }

    /// Every subtest in the ndt7 log, in file order, as result objects;
    /// damage and unreadable files become `warnings` naming the file.
    pub fn load_ndt7(&self, warnings: &mut Vec<String>) -> Vec<TestResult> {
        let path = self.ndt7_path();
        let shown = path.display();
        let text = match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Ok(meta) if !meta.is_file() => {
                warnings.push(format!("{shown}: skipped: not a regular file"));
                return Vec::new();
            }
            _ => match fs::read(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    warnings.push(format!("{shown}: cannot read: {e}"));
                    return Vec::new();
                }
            },
        };
        let mut results = Vec::new();
        let mut filekey = None;
        for (offset, piece) in entries(&text) {
            let mut first = true;
            let damage = read_log_each(piece, Detail::Full, |item| {
                let LogItem::Entry(value) = item else { return };
                let Ok(record) = serde_json::from_value::<Record>(value) else {
                    return;
                };
                // Only the piece's first entry starts at its offset; a
                // compact one after it has no id of its own.
                if !std::mem::take(&mut first) {
                    return;
                }
                let at = u64::try_from(offset).unwrap_or_default();
                let key = *filekey.get_or_insert(record.timestamp().unwrap_or_default());
                results.extend(result_of(&record, id(key, at)));
            });
            if !damage.is_empty() {
                let before = memchr::memchr_iter(b'\n', &text.as_bytes()[..offset]).count();
                warnings.extend(damage.into_iter().map(|mut d| {
                    d.line += before;
                    format!("{shown}: {d}")
                }));
            }
        }
        results
    }
}

/// `text` cut before every line that is exactly `{` (where our documents
/// begin), with the offset of each piece.
fn entries(text: &str) -> Vec<(usize, &str)> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "{" || starts.is_empty() {
            starts.push(at);
        }
        at += line.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            (
                s,
                &text[s..starts.get(i + 1).copied().unwrap_or(text.len())],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndt7::record::tests::sample as record;

    #[test]
    fn recorded_subtests_load_back_with_the_same_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let a = logs.record_ndt7(&record(Kind::Download, 1_000, "a"));
        a.written.unwrap();
        let a = a.result.unwrap();
        assert_eq!(a.id, "ndt7-1000-0");
        assert_eq!(a.protocol, "ndt7");
        assert_eq!(a.port, 8080);
        assert_eq!(a.send_bps, Some(1e9));
        assert_eq!(a.receive_bps, None);
        assert_eq!(a.min_rtt_ms, Some(1.5));
        assert_eq!(a.name.as_deref(), Some("a"));
        assert_eq!(a.overlapped, Some(false));
        // Damage between entries is skipped and named.
        fs::OpenOptions::new()
            .append(true)
            .open(logs.ndt7_path())
            .and_then(|mut f| io::Write::write_all(&mut f, b"{\n\"torn"))
            .unwrap();
        let b = logs
            .record_ndt7(&record(Kind::Upload, 2_000, "b"))
            .result
            .unwrap();
        let text = fs::read_to_string(logs.ndt7_path()).unwrap();
        let size_before_b = text.rfind("\n{\n").unwrap() + 1;
        assert_eq!(b.id, format!("ndt7-1000-{size_before_b}"));
        assert_eq!(b.receive_bps, Some(8e8));
        assert_eq!(b.send_bps, None);

        let mut warnings = Vec::new();
        let loaded = logs.load_ndt7(&mut warnings);
        assert_eq!(loaded, vec![a, b]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("ndt7.json: line"), "{warnings:?}");
    }

    #[test]
    fn no_file_is_no_results() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let mut warnings = Vec::new();
        assert!(logs.load_ndt7(&mut warnings).is_empty());
        assert!(warnings.is_empty());
    }
}
