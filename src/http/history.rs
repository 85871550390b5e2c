//! Answers built from the history that are too big or too exact for
//! `warp::reply::json`: every test streamed as one JSON array, written in
//! chunks as they are read from the store (off the async workers, with a
//! deadline on each write), and the detail answer with the logged entry
//! spliced in as the text it is in the log.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use tokio::sync::mpsc;
use warp::Reply;

use crate::hub::{Hub, ResultFilter, TestResult};

/// Results read from the store (under its lock) per chunk of the answer.
const STRETCH: usize = 2_000;

/// Chunks ready to send ahead of the client.
const AHEAD: usize = 2;

/// A client that takes no chunk for this long is given up on.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Every test passing `filter`, oldest first, as a JSON array written in
/// chunks of [`STRETCH`] results: the store is read a stretch at a time on
/// the blocking pool, so neither the answer nor the lock is ever held
/// whole. A test recorded while the answer is written is in it if the
/// stretch it falls in is not written yet.
pub fn stream_results(hub: Arc<Hub>, filter: ResultFilter) -> impl Reply {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(AHEAD);
    tokio::spawn(async move {
        let mut from = 0;
        let mut first = true;
        loop {
            let (hub, filter) = (hub.clone(), filter.clone());
            let read = tokio::task::spawn_blocking(move || {
                hub.with_store(|store, _| {
                    let (found, next) = store.stretch(&filter, from, STRETCH);
                    (found, next, next >= store.len())
                })
            })
            .await;
            let Ok((found, next, done)) = read else {
                return;
            };
            let mut chunk = Vec::with_capacity(found.len() * 512 + 2);
            for result in &found {
                chunk.push(if first { b'[' } else { b',' });
                first = false;
                // A result always serialises; a failure would be a bug.
                let _ = serde_json::to_writer(&mut chunk, result);
            }
            if done {
                chunk.extend_from_slice(if first { b"[]" } else { b"]" });
            }
            let sent = tokio::time::timeout(WRITE_DEADLINE, tx.send(chunk)).await;
            if done || !matches!(sent, Ok(Ok(()))) {
                return;
            }
            from = next;
        }
    });
    let chunks = stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::io::Error>))
    });
    warp::reply::with_header(
        warp::reply::stream(chunks),
        "content-type",
        "application/json",
    )
}

/// `{"result": ..., "entry": ..., "verdict": ...}` with `entry` (one JSON
/// object, checked by whoever read it) spliced in exactly as given.
pub fn detail_body(
    result: &TestResult,
    entry: &str,
    verdict: &serde_json::Value,
) -> serde_json::Result<String> {
    let result = serde_json::to_string(result)?;
    let verdict = serde_json::to_string(verdict)?;
    Ok(format!(
        "{{\"result\":{result},\"entry\":{entry},\"verdict\":{verdict}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_spliced_in_as_it_is() {
        let result = crate::store::results::tests::result(5201, 1);
        let entry = "{\n\t\"a\":\t1.50\n}";
        let body = detail_body(&result, entry, &serde_json::json!({"x": 1})).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["result"]["port"], 5201);
        assert_eq!(parsed["verdict"]["x"], 1);
        assert!(body.contains("\"entry\":{\n\t\"a\":\t1.50\n}"));
    }
}
