//! `<log-dir>/probes.json`: every probe the box ran as an iperf3 client
//! (`GET /probe`, `--probe-every`), one entry per probe in the stock
//! client's `iperf3 -c --json` layout, appended with the same write path
//! and retention as the port logs (rotated to `probes.json.<N>`); loading
//! at start-up ([`crate::files::load`]) reads it back the same way. The
//! result object of such an entry is [`crate::analysis::probe`]'s.
//!
//! A result's id is `probe-<filekey>-<offset>`, keyed as a port log's.

use crate::analysis::probe::judged;
use crate::files::log_dir::{LogDir, Recorded};
use crate::history::ids::LogKey;
use crate::json::Json;

impl LogDir {
    /// The probes' log.
    pub fn probe_path(&self) -> std::path::PathBuf {
        self.log_path(LogKey::Probe, 0)
    }

    /// Appends one probe's entry to the probes' log with a single write,
    /// as [`LogDir::record`] does for a port's, and returns its result.
    pub fn record_probe(&self, entry: &Json) -> Recorded {
        let value = crate::json::to_value(entry);
        self.record_in(LogKey::Probe, entry, &value, judged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::probe::{result_of, summary_of};
    use crate::analysis::test_result::TestResult;
    use crate::history::results_store::ResultsStore;
    use crate::json::from_value;
    use serde_json::Value;

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
        let read = crate::files::reader::read_log(served);
        let Some(crate::files::reader::LogItem::Entry(first)) = read.items.first() else {
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
        let size = crate::json::to_pretty(&stock_entry()).len() as u64;
        let retention = crate::config::Retention {
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
