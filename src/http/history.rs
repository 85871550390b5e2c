//! The detail answer of one test, `{"result": ..., "entry": ..., "verdict":
//! ...}`, with the logged entry spliced in as the text it is in the log.
//!
//! An entry can be tens of MiB (a `-P 128` test that ran for long), so the
//! answer costs: the entry is read once, parsed once (building only what
//! the verdict reads, [`read_lean`]), and the answer is the entry's text
//! between two small pieces, never copied into one. All of it runs on the
//! blocking pool, at most [`MAX_DETAILS`] at once (the handler answers 503
//! beyond); a slot is held until the answer is sent or its connection is
//! dropped, so memory for details is bounded whatever the number of
//! clients.

use crate::hub::TestResult;
use crate::store::entry::EntryError;
use crate::store::verdict::{judge, read_lean};

/// Detail answers read or sent at once.
pub const MAX_DETAILS: usize = 2;

/// The detail answer for `result` whose logged entry is `entry` (its text
/// as read, not yet checked): three chunks, the entry's text in the middle
/// exactly as given. [`EntryError::Gone`] if `entry` is not one JSON
/// object.
pub fn detail(result: &TestResult, entry: String) -> Result<Vec<Vec<u8>>, EntryError> {
    run_detail(result, entry, None)
}

/// [`detail`] of a speed-test run: `upload` is its upload's entry (the
/// download's is `entry`), spliced in as `upload_entry`; `latency` holds
/// the median and 90th percentile of each phase's round trips.
pub fn run_detail(
    result: &TestResult,
    entry: String,
    upload: Option<String>,
) -> Result<Vec<Vec<u8>>, EntryError> {
    let lean = read_lean(&entry).map_err(|_| EntryError::Gone)?;
    let verdict = judge(&lean, result);
    let mut head = b"{\"result\":".to_vec();
    let mut tail = b",\"verdict\":".to_vec();
    let io = |e: serde_json::Error| EntryError::Io(e.into());
    serde_json::to_writer(&mut head, result)
        .and_then(|()| serde_json::to_writer(&mut tail, &verdict))
        .map_err(io)?;
    head.extend_from_slice(b",\"entry\":");
    if result.protocol == crate::store::ndt7_log::PROTOCOL {
        let measured = |text: &str| {
            serde_json::from_str::<crate::ndt7::record::Record>(text)
                .map(|r| r.latency())
                .unwrap_or_default()
        };
        let down = measured(&entry);
        let up = upload.as_deref().map(measured).unwrap_or_default();
        let latency = serde_json::json!({
            "idle": down.idle.or(up.idle),
            "download": down.download,
            "upload": up.upload.or(down.upload),
        });
        tail.extend_from_slice(b",\"latency\":");
        serde_json::to_writer(&mut tail, &latency).map_err(io)?;
    }
    tail.push(b'}');
    let mut parts = vec![head, entry.into_bytes()];
    if let Some(upload) = upload {
        parts.push(b",\"upload_entry\":".to_vec());
        parts.push(upload.into_bytes());
    }
    parts.push(tail);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_spliced_in_as_it_is() {
        let result = crate::store::results::tests::result(5201, 1);
        let entry = "{\n\t\"a\":\t1.50,\n\t\"intervals\":\t[{}]\n}";
        let body = detail(&result, entry.to_string()).unwrap().concat();
        let body = String::from_utf8(body).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["result"]["port"], 5201);
        assert_eq!(parsed["verdict"]["limited_by"], "unknown");
        assert!(body.contains(&format!("\"entry\":{entry},\"verdict\"")));
    }

    #[test]
    fn what_is_not_one_object_is_gone() {
        let result = crate::store::results::tests::result(5201, 1);
        for bad in ["{\"a\": 1} x", "[1]", "{\"a\":"] {
            assert!(matches!(
                detail(&result, bad.to_string()),
                Err(EntryError::Gone)
            ));
        }
    }
}
