//! Helpers for the property tests that sit next to the code they check
//! (compiled for tests only): the run length, and generators of JSON values
//! (serde_json's). It imports nothing of the crate, so any module's tests
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
