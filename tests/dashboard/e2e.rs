//! The real binary with a stock iperf3 client: live progress and the result
//! reach a websocket client, `/api/latest` shows the test, SIGTERM ends the
//! program cleanly, and a restart shows the same history.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::daemon::{Daemon, Launch};
use crate::support::http::http_get;
use crate::support::iperf3;
use crate::support::ports::retry_in_use;

/// Starts the binary on two consecutive loopback ports (more than
/// `--port 0` gives), logging into `log_dir`.
fn start_two(log_dir: &Path) -> Daemon {
    retry_in_use(2, |first| Launch::new(log_dir).ports(first, 2).try_start())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn text_json(msg: &Message) -> Option<Value> {
    match msg {
        Message::Text(text) => {
            Some(serde_json::from_str(text.as_str()).expect("JSON text message"))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_test_is_shown_live_and_kept() {
    let iperf3 = iperf3::require();
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start_two(dir.path());
    let port = daemon.port + 1;

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", daemon.http))
        .await
        .expect("websocket connects");
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = text_json(&first).unwrap();
    assert_eq!(first["type"], "status");
    assert_eq!(first["ports"].as_array().unwrap().len(), 2);

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let out = Command::new(iperf3)
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "3",
                "--extra-data",
                "e2e-alice",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run iperf3");
        let _ = done_tx.send((out, Instant::now()));
    });

    let started = Instant::now();
    let mut progress = Vec::new();
    let mut saw_running = false;
    let (result, result_at) = loop {
        let msg =
            tokio::time::timeout_at((started + Duration::from_secs(30)).into(), socket.next())
                .await
                .expect("a result within 30 s")
                .expect("websocket open")
                .expect("websocket ok");
        let Some(msg) = text_json(&msg) else { continue };
        match msg["type"].as_str() {
            Some("progress") if msg["port"] == port => {
                assert!(msg["bps"].as_f64().unwrap() >= 0.0);
                progress.push((msg["seconds"].as_f64().unwrap(), started.elapsed()));
            }
            Some("status") => {
                let p = msg["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["port"] == port)
                    .cloned()
                    .unwrap();
                if p["state"] == "running" {
                    assert_eq!(p["name"], "e2e-alice");
                    assert_eq!(p["client"], "127.0.0.1");
                    saw_running = true;
                }
            }
            Some("result") if msg["result"]["port"] == port => {
                break (msg["result"].clone(), Instant::now())
            }
            _ => {}
        }
    };
    let (out, exited_at) = done_rx.await.unwrap();
    assert!(
        out.status.success(),
        "iperf3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(saw_running, "a status message showed the port running");
    assert!(
        progress.len() >= 2,
        "progress about once a second during the 3 s test: {progress:?}"
    );
    assert!(
        result_at <= exited_at + Duration::from_secs(1),
        "result {:?} after the client finished",
        result_at.saturating_duration_since(exited_at)
    );
    assert_eq!(result["name"], "e2e-alice");
    assert_eq!(result["client"], "127.0.0.1");
    assert_eq!(result["protocol"], "TCP");
    assert!(result["receive_bps"].as_f64().unwrap() > 0.0);

    let latest = http_get(daemon.http, "/api/latest").unwrap().json();
    assert!(latest[0].is_null());
    assert_eq!(latest[1]["name"], "e2e-alice");
    assert_eq!(latest[1]["timestamp"], result["timestamp"]);

    let log = std::fs::read_to_string(dir.path().join(format!("port-{port}.json"))).unwrap();
    assert!(
        log.starts_with("{\n") && log.contains("\"extra_data\":\t\"e2e-alice\""),
        "{log}"
    );

    let csv = http_get(daemon.http, "/csv").unwrap();
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=iperf3_log.csv")
    );
    assert_eq!(
        String::from_utf8_lossy(&csv.body).lines().count(),
        2,
        "header and one test"
    );

    // SIGTERM: exit 0, websocket closed.
    let status = daemon.terminate();
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.stderr_text()
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "websocket closed on shutdown");

    // A restart on the same log dir shows the same history.
    let daemon = start_two(dir.path());
    let all = http_get(daemon.http, "/api/results").unwrap().json();
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, ["e2e-alice"]);
}
