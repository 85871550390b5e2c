//! The result object of a probe's entry (the stock client's layout,
//! `"kind": "probe"`, `"target"`). Its figures read as every result's,
//! the target being the server: `receive_bps` what the target received of
//! what the box sent (client to server), `send_bps` what it sent the box
//! (`-R`), as the stock client's `end` has them once the results are
//! exchanged.

use serde_json::Value;

use crate::analysis::summary::summarize;
use crate::analysis::test_result::TestResult;

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

/// The result `entry` stands for, whichever log it is for: a probe's when
/// it names a target it connected to, else an iperf3 port's (`port`).
pub fn summary_of(port: u16, entry: &Value) -> Option<TestResult> {
    match target_of(entry) {
        Some(_) => result_of(entry),
        None => summarize(port, entry),
    }
}

/// [`result_of`] with the verdict's kind.
pub fn judged(entry: &Value) -> Option<TestResult> {
    result_of(entry).map(|r| crate::analysis::verdict::with_limit(r, entry))
}
