//! The results documents of the end-of-test exchange: stream ids, and the
//! checks the other side's document must pass. (The server's own document is built
//! by [`crate::report`].)

use serde_json::Value;

use super::errors::ErrorCode;

/// Stream ids in creation order: 1, 3, 4, 5, … (2 is never used; stock quirk).
pub fn stream_id(index: usize) -> i64 {
    if index == 0 {
        1
    } else {
        index as i64 + 2
    }
}

/// Deepest nesting accepted in a client's results document. Real documents
/// are three levels deep (object, `streams` array, stream objects); the
/// document is kept in the log under `webperf3`, and the log must stay
/// readable by JSON parsers with a recursion limit (serde_json: 128).
pub const MAX_RESULTS_DEPTH: usize = 16;

/// How deeply `v` nests arrays and objects (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The other side's results document (a client's, on the server; the
/// server's, on a probe's client) that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerResults {
    /// What the log's `webperf3` key keeps of the document: see [`kept`].
    pub document: Value,
}

/// Top-level members of a client's results kept for the log.
const KEPT_TOP: [&str; 5] = [
    "cpu_util_total",
    "cpu_util_user",
    "cpu_util_system",
    "sender_has_retransmits",
    "congestion_used",
];

/// Members of each stream's results kept for the log.
const KEPT_STREAM: [&str; 10] = [
    "id",
    "bytes",
    "retransmits",
    "jitter",
    "errors",
    "omitted_errors",
    "packets",
    "omitted_packets",
    "start_time",
    "end_time",
];

/// Longest string member kept (a congestion algorithm's name is at most 15
/// bytes); longer ones are cut at a character boundary.
pub const MAX_KEPT_STRING: usize = 64;

/// What the log keeps of a checked results document: the members stock
/// clients send, strings cut at [`MAX_KEPT_STRING`] bytes, one entry per
/// stream id (the first). A document may be up to
/// [`super::wire::MAX_RESULTS_LEN`] bytes; what is kept is at most a few
/// hundred bytes per stream of the test, whatever the client adds.
fn kept(doc: &Value, ids: &[i64]) -> Value {
    let pick = |m: &serde_json::Map<String, Value>, keys: &[&str]| -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in m {
            if !keys.contains(&k.as_str()) {
                continue;
            }
            let v = match v {
                Value::String(s) if s.len() > MAX_KEPT_STRING => {
                    let mut end = MAX_KEPT_STRING;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    Value::String(s[..end].to_string())
                }
                Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.clone(),
                // Stock sends no nested values in these members.
                Value::Array(_) | Value::Object(_) => continue,
            };
            out.insert(k.clone(), v);
        }
        Value::Object(out)
    };
    let Value::Object(top) = doc else {
        return Value::Null;
    };
    let mut out = pick(top, &KEPT_TOP);
    let mut seen = Vec::new();
    let mut streams = Vec::new();
    for s in top
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Value::Object(m), Some(id)) = (s, s.get("id").and_then(Value::as_i64)) else {
            continue;
        };
        if ids.contains(&id) && !seen.contains(&id) {
            seen.push(id);
            streams.push(pick(m, &KEPT_STREAM));
        }
    }
    if let Value::Object(o) = &mut out {
        o.insert("streams".into(), Value::Array(streams));
    }
    out
}

/// `doc` (a kept results document) with every stream's `retransmits`
/// that is the unsigned 64-bit image of -1 (what stock 3.12 and older send
/// for a stream without them) written as -1, as newer stock sends it: a
/// probe's record, and a served test's `client_results`, show the figure,
/// not 1.8e19.
pub fn with_signed_retransmits(doc: &Value) -> Value {
    let mut out = doc.clone();
    let streams = out.get_mut("streams").and_then(Value::as_array_mut);
    for s in streams.into_iter().flatten() {
        if let Some(r) = s.get_mut("retransmits") {
            if r.as_f64().is_some_and(|v| v > i64::MAX as f64) {
                *r = Value::from(-1);
            }
        }
    }
    out
}

/// Checks the other side's results document as stock does (a server the
/// client's, a client the server's; the rules are the same): the top-level
/// numbers and `streams` must exist with the right types, every stream must
/// carry its required numbers, and every id must be one of ours (1 … `count`
/// streams); the document may nest at most [`MAX_RESULTS_DEPTH`] levels.
/// Errors carry the code to send: 117, or 208 for an unknown id.
pub fn check_results(body: &[u8], count: usize) -> Result<PeerResults, (ErrorCode, String)> {
    let bad = |what: String| (ErrorCode::RECV_RESULTS, what);
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Object(top) = &doc else {
        return Err(bad("not an object".into()));
    };
    if depth(&doc) > MAX_RESULTS_DEPTH {
        return Err(bad(format!("nested deeper than {MAX_RESULTS_DEPTH}")));
    }
    for key in [
        "cpu_util_total",
        "cpu_util_user",
        "cpu_util_system",
        "sender_has_retransmits",
    ] {
        if !top.get(key).is_some_and(Value::is_number) {
            return Err(bad(format!("{key} missing or not a number")));
        }
    }
    let Some(Value::Array(streams)) = top.get("streams") else {
        return Err(bad("streams missing or not an array".into()));
    };
    let ids: Vec<i64> = (0..count).map(stream_id).collect();
    for stream in streams {
        let Value::Object(s) = stream else {
            return Err(bad("stream is not an object".into()));
        };
        for key in ["id", "bytes", "retransmits", "jitter", "errors", "packets"] {
            if !s.get(key).is_some_and(Value::is_number) {
                return Err(bad(format!("stream {key} missing or not a number")));
            }
        }
        let id = s.get("id").and_then(Value::as_i64);
        if !id.is_some_and(|id| ids.contains(&id)) {
            return Err((
                ErrorCode::STREAM_ID,
                format!("unknown stream id {}", s["id"]),
            ));
        }
    }
    Ok(PeerResults {
        document: kept(&doc, &ids),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = r#"{"cpu_util_total":0.37723793145621232,"cpu_util_user":0,"cpu_util_system":0.37713809344338811,"sender_has_retransmits":1,"congestion_used":"bbr","streams":[{"id":1,"bytes":5111808,"retransmits":0,"jitter":0,"errors":0,"omitted_errors":0,"packets":0,"omitted_packets":0,"start_time":0,"end_time":2.001976}]}"#;

    #[test]
    fn ids() {
        let ids: Vec<i64> = (0..4).map(stream_id).collect();
        assert_eq!(ids, [1, 3, 4, 5]);
    }

    #[test]
    fn what_is_kept_is_bounded_by_the_streams() {
        let real: Value = serde_json::from_str(CLIENT).unwrap();
        let r = check_results(CLIENT.as_bytes(), 1).unwrap();
        assert_eq!(r.document, real, "a stock document is kept whole");
        // Extra members, long strings and repeated streams are dropped.
        let stream = r#"{"id":1,"bytes":1,"retransmits":0,"jitter":0,"errors":0,"packets":0,"junk":"xxxxxxxx"}"#;
        let big = format!(
            r#"{{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"congestion_used":"{}","padding":"{}","streams":[{}]}}"#,
            "é".repeat(100),
            "x".repeat(100_000),
            vec![stream; 2000].join(",")
        );
        let r = check_results(big.as_bytes(), 1).unwrap();
        let kept = serde_json::to_string(&r.document).unwrap();
        assert!(kept.len() < 400, "{} bytes kept: {kept}", kept.len());
        assert!(r.document.get("padding").is_none());
        assert_eq!(r.document["streams"].as_array().unwrap().len(), 1);
        assert!(r.document["streams"][0].get("junk").is_none());
        assert_eq!(r.document["congestion_used"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn accepts_real_results_and_3_12_minus_one() {
        assert!(check_results(CLIENT.as_bytes(), 1).is_ok());
        let old = CLIENT.replace("\"retransmits\":0", "\"retransmits\":18446744073709551615");
        assert!(check_results(old.as_bytes(), 1).is_ok());
    }

    #[test]
    fn the_unsigned_image_of_minus_one_is_kept_as_minus_one() {
        let old = CLIENT.replace("\"retransmits\":0", "\"retransmits\":18446744073709551615");
        let kept = check_results(old.as_bytes(), 1).unwrap().document;
        let signed = with_signed_retransmits(&kept);
        assert_eq!(signed["streams"][0]["retransmits"], -1);
        assert_eq!(signed["streams"][0]["bytes"], 5111808);
        let real = check_results(CLIENT.as_bytes(), 1).unwrap().document;
        assert_eq!(with_signed_retransmits(&real), real);
    }

    #[test]
    fn rejects_bad_documents() {
        let code = |s: &str, n| check_results(s.as_bytes(), n).unwrap_err().0 .0;
        assert_eq!(code("nope", 1), 117);
        assert_eq!(code("{}", 1), 117);
        assert_eq!(code(&CLIENT.replace("\"cpu_util_user\":0,", ""), 1), 117);
        assert_eq!(
            code(&CLIENT.replace("\"jitter\":0", "\"jitter\":\"0\""), 1),
            117
        );
        assert_eq!(code(&CLIENT.replace("\"id\":1", "\"id\":2"), 1), 208);
        assert_eq!(code(&CLIENT.replace("\"id\":1", "\"id\":3"), 1), 208);
        assert!(check_results(CLIENT.replace("\"id\":1", "\"id\":3").as_bytes(), 2).is_ok());
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing() {
        let code = |s: &str| check_results(s.as_bytes(), 1).unwrap_err().0 .0;
        // Beyond serde_json's recursion limit: a parse error, not a crash.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code(&deep), 117);
        let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert_eq!(code(&deep_obj), 117);
        // Within serde_json's limit but too deep to keep in a log that
        // readers must parse again.
        let extra = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let doc = CLIENT.replacen('{', &format!(r#"{{"extra":{extra},"#), 1);
        assert_eq!(code(&doc), 117);
        let shallow = CLIENT.replacen('{', r#"{"extra":[[1]],"#, 1);
        assert!(check_results(shallow.as_bytes(), 1).is_ok());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::testing::{config, json_value};
    use proptest::prelude::*;
    use serde_json::json;

    const KEYS: &[&str] = &[
        "cpu_util_total",
        "cpu_util_user",
        "cpu_util_system",
        "sender_has_retransmits",
        "streams",
        "id",
        "bytes",
        "retransmits",
        "jitter",
        "errors",
        "packets",
    ];

    /// A well-formed document for `count` streams, each with arbitrary
    /// numbers.
    fn valid(count: usize) -> impl Strategy<Value = Value> {
        proptest::collection::vec((any::<u32>(), any::<i32>(), 0.0f64..1.0), count).prop_map(
            |streams| {
                let streams: Vec<Value> = streams
                    .iter()
                    .enumerate()
                    .map(|(i, (bytes, retr, jitter))| {
                        json!({"id": stream_id(i), "bytes": bytes, "retransmits": retr,
                               "jitter": jitter, "errors": 0, "packets": 0})
                    })
                    .collect();
                json!({"cpu_util_total": 1.5, "cpu_util_user": 1, "cpu_util_system": 0.5,
                       "sender_has_retransmits": 1, "streams": streams})
            },
        )
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            count in 0usize..300,
        ) {
            if let Err((code, _)) = check_results(&body, count) {
                prop_assert!(code == ErrorCode::RECV_RESULTS || code == ErrorCode::STREAM_ID);
            }
        }

        #[test]
        fn arbitrary_json_is_accepted_only_when_well_formed(
            doc in json_value(KEYS),
            count in 0usize..5,
        ) {
            let body = serde_json::to_vec(&doc).unwrap();
            if let Ok(r) = check_results(&body, count) {
                prop_assert_eq!(&r.document, &doc);
                prop_assert!(depth(&doc) <= MAX_RESULTS_DEPTH);
                let ids: Vec<i64> = (0..count).map(stream_id).collect();
                for s in doc["streams"].as_array().unwrap() {
                    prop_assert!(ids.contains(&s["id"].as_i64().unwrap()));
                }
            }
        }

        #[test]
        fn well_formed_documents_are_accepted(
            (count, doc) in (0usize..8).prop_flat_map(|n| (Just(n), valid(n))),
            extra in 0usize..4,
        ) {
            let body = serde_json::to_vec(&doc).unwrap();
            prop_assert!(check_results(&body, count + extra).is_ok());
            if count > 0 {
                // One stream fewer on our side: its id is unknown to us.
                let (code, _) = check_results(&body, count - 1).unwrap_err();
                prop_assert_eq!(code, ErrorCode::STREAM_ID);
            }
        }
    }
}
