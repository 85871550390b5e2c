//! Helpers for the tests that sit next to the code they check (compiled
//! for tests only): the run length of property tests, generators of JSON
//! values (serde_json's), FIFOs and a deadline for code that might block. It imports nothing of the crate, so any module's tests
//! may use it.
//!
//! Each property runs a modest number of cases so the whole suite stays
//! fast; `PROPTEST_CASES=N cargo test` runs every property N times instead.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// A proptest configuration running `default` cases, or `PROPTEST_CASES`
/// cases when that is set. Failures are not persisted to files: a failure
/// found becomes a named regression test next to the property.
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A JSON scalar: null, a boolean, an integer or float of any size, or a
/// short string.
pub fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels, with object keys drawn from `keys`
/// (so the decoders see the names they look for) or made up.
pub fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_string),
        1 => "[a-zA-Z_]{0,8}".prop_map(String::from),
    ];
    json_scalar().prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Makes a FIFO at `path` (opening it for reading blocks until a writer
/// comes).
pub fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a path");
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// What `f` returns, run on a thread of its own; panics if it takes longer
/// than `limit` (the thread is left blocked: the test fails instead of
/// hanging).
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("not done within {limit:?}: {e}"))
}
