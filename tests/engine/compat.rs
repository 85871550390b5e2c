//! Our log entries against stock iperf3's for the same client command: the
//! same key paths with the same JSON types. A stock `iperf3 -s --json
//! --logfile` runs beside ours on loopback.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::Server;
use crate::support::iperf3::{client_json, StockServer};
use crate::support::logs::{read_entries, wait_entries};

/// Keys newer stock releases write that Debian's 3.12 does not, and our own
/// `webperf3` key. Paths are given with array indices removed.
const NEWER_THAN_3_12: &[&str] = &[
    "start.fq_rate",
    "start.timestamp.timemillisecs",
    "start.test_start.bidir",
    "start.test_start.fqrate",
    "start.test_start.interval",
    "start.test_start.gso",
    "start.test_start.gro",
    "intervals.streams.reorder",
    "end.streams.sender.reorder",
];

/// Every key path of `v` (array elements share their array's path) with the
/// JSON type found there.
fn paths(v: &Value, prefix: &str, out: &mut BTreeMap<String, &'static str>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone(), type_name(child));
                paths(child, &p, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|child| paths(child, prefix, out)),
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn compare(args: &[&str]) {
    let stock = StockServer::start();
    let ours = Server::alone(1);
    client_json(stock.port, args);
    client_json(ours.ports[0], args);
    let theirs = wait_entries(&stock.log, 1).remove(0);
    let mine = ours.wait_entries(0, 1).remove(0);
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    paths(&theirs, "", &mut a);
    paths(&mine, "", &mut b);
    for (path, ty) in &a {
        match b.get(path) {
            None => panic!("{args:?}: stock has {path}, we do not"),
            Some(t) => assert_eq!(t, ty, "{args:?}: {path} is a {t} in ours, a {ty} in stock"),
        }
    }
    for path in b.keys() {
        let known = a.contains_key(path)
            || NEWER_THAN_3_12.contains(&path.as_str())
            || path == "webperf3"
            || path.starts_with("webperf3.");
        assert!(
            known,
            "{args:?}: we write {path}, which no stock version writes"
        );
    }
    // Ours parses with the same strict reader.
    assert_eq!(read_entries(&ours.log_path(0)).len(), 1);
}

#[test]
fn tcp_same_keys_as_stock() {
    compare(&["-t", "1", "--extra-data", "x", "--title", "t"]);
}

#[test]
fn tcp_reverse_same_keys_as_stock() {
    compare(&["-t", "1", "-R", "-b", "1G"]);
}

#[test]
fn tcp_bidir_same_keys_as_stock() {
    compare(&["-t", "1", "--bidir", "-P", "2"]);
}

#[test]
fn udp_same_keys_as_stock() {
    compare(&["-t", "1", "-u", "-b", "10M"]);
}

#[test]
fn udp_reverse_same_keys_as_stock() {
    compare(&["-t", "1", "-u", "-R", "-b", "10M"]);
}

#[test]
fn udp_bidir_same_keys_as_stock() {
    compare(&["-t", "1", "-u", "--bidir", "-b", "10M"]);
}
