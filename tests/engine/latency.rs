//! Latency under load of a speed-test run, against the binary: the page's
//! part played with plain websockets (the latency socket echoing every
//! frame, a download and an upload naming the run); the run is one
//! result with idle and loaded latency, and its samples are logged in
//! the subtests' documents. Refusals of the latency route.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::daemon::Daemon;
use crate::support::ndt7::{connect, refusal};
use crate::support::wait::wait_until;

const LIMIT: Duration = Duration::from_secs(40);

const RUN: &str = "run-0123abcd";

/// Echoes every text frame of the latency socket until it ends, counting
/// them in `seen`.
async fn echo(mut socket: crate::support::ndt7::Socket, seen: Arc<AtomicUsize>) {
    while let Some(Ok(m)) = socket.next().await {
        if let Message::Text(t) = m {
            let frame: Value = serde_json::from_str(&t).expect("a JSON frame");
            assert!(
                frame["seq"].is_u64() && frame["phase"].is_string(),
                "{frame}"
            );
            seen.fetch_add(1, Ordering::Relaxed);
            if socket.send(Message::Text(t)).await.is_err() {
                break;
            }
        }
    }
}

/// Runs a subtest to its end: reads a download, or sends 64 KiB messages
/// for an upload until the server closes.
async fn subtest(socket: crate::support::ndt7::Socket, upload: bool) {
    let end = tokio::time::Instant::now() + LIMIT;
    let chunk = vec![0u8; 1 << 16];
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
            sent = tx.send(Message::Binary(chunk.clone().into())), if upload => {
                if sent.is_err() { break; }
            }
            () = tokio::time::sleep_until(end) => panic!("the subtest did not end"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_latency_socket_is_one_result_with_its_latency() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let addr = daemon.http;
    let latency = connect(addr, &format!("/ndt/v7/latency?run={RUN}"), false)
        .await
        .expect("the latency socket");
    let seen = Arc::new(AtomicUsize::new(0));
    let echoer = tokio::spawn(echo(latency, Arc::clone(&seen)));
    // A second latency socket for the same run is refused.
    let (code, _) = refusal(
        connect(addr, &format!("/ndt/v7/latency?run={RUN}"), false)
            .await
            .expect_err("one per run"),
    );
    assert_eq!(code, 409);
    // Idle first: a few frames echoed (the server sends every 100 ms).
    let deadline = tokio::time::Instant::now() + LIMIT;
    while seen.load(Ordering::Relaxed) < 5 {
        assert!(tokio::time::Instant::now() < deadline, "no latency frames");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let query = format!("?client_name=webperf3-web&run={RUN}&name=den");
    let down = connect(addr, &format!("/ndt/v7/download{query}"), true)
        .await
        .unwrap();
    subtest(down, false).await;
    let up = connect(addr, &format!("/ndt/v7/upload{query}"), true)
        .await
        .unwrap();
    subtest(up, true).await;
    // The page closes the latency socket when the run ends: dropping the
    // echo task's socket does.
    echoer.abort();
    wait_until(LIMIT, "the run's result", || {
        let (_, body) = daemon.get("/api/results?protocol=ndt7");
        let all: Vec<Value> = serde_json::from_str(&body).unwrap();
        all.len() == 1 && all[0]["receive_bps"].is_number()
    });
    let (_, body) = daemon.get("/api/results?protocol=ndt7");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    let run = &all[0];
    assert_eq!(run["name"], "den");
    assert!(run["send_bps"].as_f64().unwrap() > 0.0, "{run}");
    for key in [
        "latency_idle_ms",
        "latency_down_ms",
        "latency_up_ms",
        "jitter_ms",
    ] {
        assert!(run[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {run}");
    }
    assert!(run["grade"].is_string(), "{run}");
    assert!(run["good_for"]["gaming"].is_string(), "{run}");
    // The samples are in the subtests' documents, each phase where it belongs.
    let text = std::fs::read_to_string(dir.path().join("ndt7.json")).unwrap();
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 2);
    let phases = |doc: &Value, part: &str| -> Vec<String> {
        let l = &doc[part]["WebperfLatency"];
        assert_eq!(l["Run"], RUN, "{doc}");
        let samples = l["Samples"].as_array().unwrap();
        assert!(samples.len() <= 600);
        samples
            .iter()
            .map(|s| s[1].as_str().unwrap().to_string())
            .collect()
    };
    let down = phases(&docs[0], "Download");
    assert!(down.iter().any(|p| p == "idle") && down.iter().any(|p| p == "download"));
    assert!(!down.iter().any(|p| p == "upload"), "{down:?}");
    let up = phases(&docs[1], "Upload");
    assert!(up.iter().any(|p| p == "upload"), "{up:?}");
    // Its detail gives both subtests and each phase's median and p90.
    let (code, body) = daemon.get(&format!("/api/results/{}", run["id"].as_str().unwrap()));
    assert_eq!(code, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert!(detail["entry"]["Download"].is_object(), "{body}");
    assert!(detail["upload_entry"]["Upload"].is_object(), "{body}");
    for phase in ["idle", "download", "upload"] {
        let l = &detail["latency"][phase];
        assert!(
            l["p90_ms"].as_f64() >= l["median_ms"].as_f64(),
            "{phase}: {l}"
        );
        assert!(l["samples"].as_u64().unwrap() > 0, "{phase}: {l}");
    }
    // The history keeps latency to a tenth of a ms.
    let exact = detail["latency"]["idle"]["median_ms"].as_f64().unwrap();
    let kept = run["latency_idle_ms"].as_f64().unwrap();
    assert!((exact - kept).abs() <= 0.051, "{exact} {kept}");
    // The same after a restart, from the log.
    let id = run["id"].clone();
    daemon.stop();
    let again = Daemon::start(dir.path(), &[]);
    let (_, body) = again.get("/api/results?protocol=ndt7");
    let loaded: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["id"], id);
    assert_eq!(loaded[0]["latency_up_ms"], run["latency_up_ms"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_route_refuses_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    for bad in ["", "?run=short", "?run=has%20space12"] {
        let e = connect(daemon.http, &format!("/ndt/v7/latency{bad}"), false)
            .await
            .expect_err("no run id");
        assert_eq!(refusal(e).0, 400, "{bad}");
    }
    let fenced = Daemon::start(dir.path(), &["--allow", "10.0.0.0/8"]);
    let e = connect(fenced.http, &format!("/ndt/v7/latency?run={RUN}"), false)
        .await
        .expect_err("not allowed");
    assert_eq!(refusal(e).0, 403);
    // An echo that is not a frame closes the socket.
    let mut s = connect(daemon.http, &format!("/ndt/v7/latency?run={RUN}"), false)
        .await
        .unwrap();
    s.send(Message::Text("not a frame".into())).await.unwrap();
    let ended = tokio::time::timeout(LIMIT, async {
        while let Some(Ok(m)) = s.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket stayed open");
}
