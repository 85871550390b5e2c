//! `<log-dir>/probes.json`: every probe the box ran as an iperf3 client
//! (`GET /probe`, `--probe-every`), one entry per probe in the stock
//! client's `iperf3 -c --json` layout, appended with the same write path
//! and retention as the port logs (rotated to `probes.json.<N>`), and the
//! result object of such an entry (`"kind": "probe"`, `"target"`), which
//! loading at start-up ([`super::load`]) reads back the same way.
//!
//! A result's id is `probe-<filekey>-<offset>`, keyed as a port log's.
//! Its figures read as every result's, the target being the server:
//! `receive_bps` what the target received of what the box sent (client
//! to server), `send_bps` what it sent the box (`-R`), as the stock
//! client's `end` has them once the results are exchanged.

use serde_json::Value;

use super::ids::LogKey;
use super::log::{LogDir, Recorded};
use super::result::TestResult;
use super::summary::summarize;
use crate::report::json::Json;

/// The `kind` of a probe's result.
pub const KIND: &str = "probe";

/// The target an entry says it connected to (`start.connecting_to`), as
/// `host:port` (`[v6]:port`).
pub fn target_of(entry: &Value) -> Option<String> {
    let to = entry.pointer("/start/connecting_to")?;
    let host = to.get("host")?.as_str()?;
    let port = to.get("port")?.as_u64()?;
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// The result object of a probe's entry (id empty); `None` if the entry
/// is not a probe's or the test never started.
pub fn result_of(entry: &Value) -> Option<TestResult> {
    let target = target_of(entry)?;
    let mut result = summarize(0, entry)?;
    if result.protocol == "UDP" && result.reverse && result.jitter_ms.is_none() {
        // The box received: its own UDP figures are the `sum` of its end
        // (a server's log has them from the client's results instead).
        let sum = entry.pointer("/end/sum");
        let figure = |key: &str| sum.and_then(|s| s.get(key)).and_then(Value::as_f64);
        (result.jitter_ms, result.lost_percent) = (figure("jitter_ms"), figure("lost_percent"));
    }
    result.client = None;
    result.kind = Some(KIND);
    result.target = Some(target);
    Some(result)
}

/// [`result_of`] with the verdict's kind.
pub fn judged(entry: &Value) -> Option<TestResult> {
    result_of(entry).map(|r| super::verdict::with_limit(r, entry))
}

/// The result `entry` stands for, whichever log it is for: a probe's when
/// it names a target it connected to, else an iperf3 port's (`port`).
pub fn summary_of(port: u16, entry: &Value) -> Option<TestResult> {
    match target_of(entry) {
        Some(_) => result_of(entry),
        None => summarize(port, entry),
    }
}

impl LogDir {
    /// The probes' log.
    pub fn probe_path(&self) -> std::path::PathBuf {
        self.log_path(LogKey::Probe, 0)
    }

    /// Appends one probe's entry to the probes' log with a single write,
    /// as [`LogDir::record`] does for a port's, and returns its result.
    pub fn record_probe(&self, entry: &Json) -> Recorded {
        self.record_in(LogKey::Probe, entry, judged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::json::from_value;
    use crate::store::results::ResultsStore;

    /// What `iperf3 -c 127.0.0.1 -p 15299 -t 1 --json` (3.12) printed.
    const STOCK_CLIENT: &str = include_str!("../../tests/fixtures/stock-3.12-client.json");

    fn stock_entry() -> Json {
        from_value(&serde_json::from_str(STOCK_CLIENT).unwrap())
    }

    /// The stock entry, started `later` seconds after it did.
    fn stock_entry_later(later: i64) -> Json {
        let mut value: Value = serde_json::from_str(STOCK_CLIENT).unwrap();
        let secs = value.pointer_mut("/start/timestamp/timesecs").unwrap();
        *secs = Value::from(secs.as_i64().unwrap() + later);
        from_value(&value)
    }

    #[test]
    fn a_stock_client_entry_is_a_probe_from_the_box_side() {
        let r = result_of(&serde_json::from_str(STOCK_CLIENT).unwrap()).unwrap();
        assert_eq!(r.kind, Some("probe"));
        assert_eq!(r.target.as_deref(), Some("127.0.0.1:15299"));
        assert_eq!((r.port, r.client.as_deref()), (0, None));
        assert_eq!(
            (r.protocol.as_str(), r.reverse, r.bidir),
            ("TCP", false, false)
        );
        // Client to server: what the target received (`sum_received`).
        assert_eq!(r.bytes_received, 1_802_764_288);
        assert_eq!(r.receive_bps, Some(14_411_723_451.391_546));
        assert_eq!(r.send_bps, None);
        // A served test's entry is no probe's.
        let served = include_str!("../../tests/fixtures/stock-3.12.json");
        let read = crate::store::reader::read_log(served);
        let Some(crate::store::reader::LogItem::Entry(first)) = read.items.first() else {
            panic!("the fixture has an entry")
        };
        assert_eq!(result_of(first), None);
        assert_eq!(summary_of(5201, first).map(|r| r.kind), Some(None));
    }

    #[test]
    fn recorded_probes_load_back_with_the_same_ids_and_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        let recorded: Vec<TestResult> = (0..2)
            .map(|_| {
                let r = logs.record_probe(&stock_entry());
                r.written.unwrap();
                r.result.unwrap()
            })
            .collect();
        assert_eq!(recorded[0].id, "probe-1796591730-0");
        assert!(recorded[1].id.starts_with("probe-1796591730-"));
        // Through the compact history, as the dashboard shows them: the
        // kind and target are kept (figures narrowed as every result's).
        let mut store = ResultsStore::new(&[]);
        let shown: Vec<TestResult> = recorded.iter().map(|r| store.push(r.clone())).collect();
        for (s, r) in shown.iter().zip(&recorded) {
            assert_eq!(
                (&s.id, s.kind, &s.target, s.port),
                (&r.id, r.kind, &r.target, 0)
            );
            assert!(s.client.is_none());
        }
        let loaded = LogDir::open(tmp.path()).unwrap().load(&[]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.store.iter().collect::<Vec<_>>(), shown);
    }

    #[test]
    fn the_probes_log_rotates_with_the_size_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let size = crate::report::json::to_pretty(&stock_entry()).len() as u64;
        let retention = crate::store::rotate::Retention {
            max_size: Some(size + size / 2),
            keep: 2,
        };
        let logs = LogDir::open(tmp.path()).unwrap().with_retention(retention);
        let first = logs.record_probe(&stock_entry());
        assert!(first.rotated.is_none());
        let second = logs.record_probe(&stock_entry_later(10));
        assert!(second.rotated.is_some_and(|r| r.log == LogKey::Probe));
        assert!(tmp.path().join("probes.json.1").is_file());
        assert!(!tmp.path().join("port-5201.json").exists());
        // The rotated copy's probe keeps its id.
        let loaded = LogDir::open(tmp.path())
            .unwrap()
            .with_retention(retention)
            .load(&[]);
        let ids: Vec<String> = loaded.store.iter().map(|r| r.id).collect();
        assert!(ids.contains(&first.result.unwrap().id), "{ids:?}");
        assert!(ids.contains(&second.result.unwrap().id), "{ids:?}");
    }
}
