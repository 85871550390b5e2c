//! ndt7 on the dashboard's port, against the binary: M-Lab's own Rust
//! client (`ndt7-client`) runs both subtests and the server's logged rates
//! agree with the client's; refusals (busy, no subprotocol, `--no-ndt7`,
//! `--allow`) come before the upgrade; a client that breaks the protocol
//! is dropped with nothing recorded; results survive a restart.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::daemon::Daemon;
use crate::support::logs::logged_entry;
use crate::support::ndt7::{self, connect, refusal};
use crate::support::wait::wait_until;

const LIMIT: Duration = Duration::from_secs(30);

/// The ndt7 result objects of `/api/results`.
fn ndt7_results(daemon: &Daemon) -> Vec<Value> {
    let (code, body) = daemon.get("/api/results");
    assert_eq!(code, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).expect("JSON results");
    all.into_iter()
        .filter(|r| r["protocol"] == "ndt7")
        .collect()
}

fn within(ours: f64, theirs: f64, tolerance: f64) -> bool {
    (ours - theirs).abs() <= tolerance * theirs
}

/// A rate of the client's summary, bits/s (`"ThroughputMbps"`).
fn client_rate(summary: &Value, test: &str) -> f64 {
    summary["Summary"][test]["ThroughputMbps"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {test} rate in {summary}"))
        * 1e6
}

#[test]
fn m_labs_client_runs_both_subtests_and_the_rates_agree() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let summary = ndt7::run_client(daemon.http, &[]);
    // One run: both subtests in one result, joined by address and time.
    wait_until(LIMIT, "the run's result", || {
        ndt7_results(&daemon)
            .first()
            .is_some_and(|r| r["receive_bps"].is_number())
    });
    let results = ndt7_results(&daemon);
    assert_eq!(results.len(), 1, "{results:?}");
    let (down, up) = (&results[0], &results[0]);
    // The client measures no latency beside: the server's RTT of the
    // loading connection while it sent, over its minimum, graded.
    assert!(down["latency_down_ms"].as_f64().is_some(), "{down}");
    assert!(down["grade"].is_string(), "{down}");
    assert!(down["latency_idle_ms"].is_null(), "{down}");
    let port = daemon.http.port();
    for r in [down, up] {
        assert_eq!(r["port"], port);
        assert_eq!(r["client"], "127.0.0.1");
        assert!(r["id"].as_str().unwrap().starts_with("ndt7-"), "{r}");
        assert!(r["min_rtt_ms"].as_f64().is_some(), "{r}");
        assert!(r["duration"].as_f64().unwrap() > 5.0, "{r}");
    }
    let ours_down = down["send_bps"].as_f64().unwrap();
    let ours_up = up["receive_bps"].as_f64().unwrap();
    let theirs_down = client_rate(&summary, "Download");
    let theirs_up = client_rate(&summary, "Upload");
    eprintln!("download: server {ours_down:.3e} client {theirs_down:.3e} bit/s");
    eprintln!("upload: server {ours_up:.3e} client {theirs_up:.3e} bit/s");
    assert!(within(ours_down, theirs_down, 0.10), "{summary}\n{down}");
    assert!(within(ours_up, theirs_up, 0.10), "{summary}\n{up}");

    // The log holds both documents in ndt-server's layout.
    let text = std::fs::read_to_string(dir.path().join("ndt7.json")).unwrap();
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("whole documents");
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        let part = doc
            .get("Download")
            .or(doc.get("Upload"))
            .expect("a subtest");
        assert!(doc["ClientIP"] == "127.0.0.1" && doc["ServerPort"] == port);
        assert!(part["UUID"].is_string() && part["StartTime"].is_string());
        let server = part["ServerMeasurements"].as_array().unwrap();
        assert!(server.len() > 10 && server.len() <= 60, "{}", server.len());
        assert!(server[0]["ConnectionInfo"]["UUID"] == part["UUID"]);
        assert!(server.last().unwrap()["TCPInfo"]["BytesAcked"].is_number());
    }

    // A restart loads them back with the same ids.
    let ids: Vec<Value> = results.iter().map(|r| r["id"].clone()).collect();
    daemon.stop();
    let again = Daemon::start(dir.path(), &[]);
    let loaded: Vec<Value> = ndt7_results(&again)
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(loaded, ids);
}

#[test]
fn ndt7_json_rotates_and_rotated_subtests_keep_their_ids_and_entries() {
    let dir = tempfile::tempdir().unwrap();
    let retention = ["--max-log-size", "64K", "--keep-rotated", "1"];
    let daemon = Daemon::start(dir.path(), &retention);
    let rotated = dir.path().join("ndt7.json.1");
    // A subtest's document is tens of KB: a run or two fills 64K.
    let mut runs = 0;
    while !rotated.exists() {
        assert!(runs < 3, "ndt7.json not rotated after {runs} client runs");
        ndt7::run_client(daemon.http, &[]);
        runs += 1;
        wait_until(LIMIT, "the run's result", || {
            ndt7_results(&daemon)
                .iter()
                .filter(|r| r["receive_bps"].is_number())
                .count()
                >= runs
        });
    }
    // Every test in the history answers its entry, byte for byte as
    // logged, from whichever file holds it now; one is in the copy.
    let results = ndt7_results(&daemon);
    let mut files = Vec::new();
    for r in &results {
        let id = r["id"].as_str().unwrap();
        let (code, body) = daemon.get(&format!("/api/results/{id}"));
        assert_eq!(code, 200, "{id}: {body}");
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(&detail["result"], r, "{id}");
        let offset: usize = id.rsplit_once('-').unwrap().1.parse().unwrap();
        let (file, text) = logged_entry(dir.path(), "ndt7.json", offset, &detail["entry"])
            .unwrap_or_else(|| panic!("{id}: the entry is in no ndt7 log"));
        assert!(body.contains(&format!("\"entry\":{text}")), "{id}");
        files.push(file);
    }
    assert!(files.iter().any(|f| f == "ndt7.json.1"), "{files:?}");
    // The history holds what the files hold, a run as one test (its
    // download's): a deleted copy's tests left.
    let logged: usize = ["ndt7.json", "ndt7.json.1"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .map(|t| {
            crate::support::logs::entry_texts(&t)
                .iter()
                .filter(|e| e.contains("\"Download\": {"))
                .count()
        })
        .sum();
    assert_eq!(results.len(), logged);
    assert!(!dir.path().join("ndt7.json.2").exists());

    // A restart loads the copy back with the same ids.
    let ids: Vec<Value> = results.iter().map(|r| r["id"].clone()).collect();
    daemon.stop();
    let again = Daemon::start(dir.path(), &retention);
    let loaded: Vec<Value> = ndt7_results(&again)
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(loaded, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtest_over_the_limit_is_refused_busy_until_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--ndt7-max-tests", "1"]);
    let held = connect(daemon.http, "/ndt/v7/download?name=first", true)
        .await
        .expect("the first subtest starts");
    let (code, body) = refusal(
        connect(daemon.http, "/ndt/v7/upload", true)
            .await
            .expect_err("a second is refused"),
    );
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    drop(held);
    // The slot frees when the server notices the client left.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match connect(daemon.http, "/ndt/v7/upload", true).await {
            Ok(_) => break,
            Err(e) => assert_eq!(refusal(e).0, 503),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let (code, body) = refusal(
        connect(daemon.http, "/ndt/v7/download", false)
            .await
            .expect_err("no subprotocol"),
    );
    assert_eq!(code, 400);
    assert!(body.contains(ndt7::SUBPROTOCOL), "{body}");
    let (code, _) = refusal(
        connect(daemon.http, "/ndt/v7/sideways", true)
            .await
            .expect_err("no such subtest"),
    );
    assert_eq!(code, 404);
    daemon.stop();

    let off = Daemon::start(dir.path(), &["--no-ndt7"]);
    let (code, _) = refusal(
        connect(off.http, "/ndt/v7/download", true)
            .await
            .expect_err("ndt7 is off"),
    );
    assert_eq!(code, 404);
    off.stop();

    let fenced = Daemon::start(dir.path(), &["--allow", "10.0.0.0/8"]);
    let (code, body) = refusal(
        connect(fenced.http, "/ndt/v7/upload", true)
            .await
            .expect_err("not allowed"),
    );
    assert_eq!(code, 403);
    assert!(body.contains("not in the allowed networks"), "{body}");
}

/// Reads until the server ends the connection; fails after [`LIMIT`].
async fn until_closed(socket: &mut ndt7::Socket) {
    tokio::time::timeout(LIMIT, async {
        while let Some(Ok(msg)) = socket.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await
    .expect("the server closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_or_data_in_a_download_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut upload = connect(daemon.http, "/ndt/v7/upload", true).await.unwrap();
    // One byte over the spec's largest message.
    let _ = upload.send(Message::binary(vec![0u8; (1 << 24) + 1])).await;
    until_closed(&mut upload).await;
    daemon.wait_stderr("ndt7: subtest dropped");

    let mut download = connect(daemon.http, "/ndt/v7/download", true)
        .await
        .unwrap();
    let _ = download.send(Message::binary(vec![0u8; 1024])).await;
    until_closed(&mut download).await;
    wait_until(LIMIT, "a second drop", || {
        daemon
            .stderr_text()
            .matches("ndt7: subtest dropped")
            .count()
            == 2
    });
    assert!(ndt7_results(&daemon).is_empty());
    assert!(!dir.path().join("ndt7.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_measures_and_is_recorded_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut socket = connect(daemon.http, "/ndt/v7/download?name=den&x=1", true)
        .await
        .unwrap();
    let (binary, measurements) = read_download(&mut socket).await;
    let sizes: Vec<usize> = binary.iter().map(Vec::len).collect();
    assert_eq!(sizes[0], 1 << 13);
    assert!(sizes.iter().all(|&s| s.is_power_of_two() && s <= 1 << 24));
    assert!(sizes.windows(2).all(|w| w[1] >= w[0]), "sizes only grow");
    let first = &measurements[0];
    assert_eq!(first["Origin"], "server");
    assert_eq!(first["Test"], "download");
    assert!(first["ConnectionInfo"]["Client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    // The spec (v0.9.0 on): servers always include the four-tuple.
    assert!(measurements
        .iter()
        .all(|m| m["ConnectionInfo"]["UUID"] == first["ConnectionInfo"]["UUID"]));
    // At most four a second (the spec: no more than ten), for ten seconds;
    // a measurement waits for the message being sent, so fewer is fine.
    let times: Vec<i64> = measurements
        .iter()
        .map(|m| m["AppInfo"]["ElapsedTime"].as_i64().unwrap())
        .collect();
    // (The last one is taken when the data phase ends.)
    let regular = &times[..times.len() - 1];
    assert!(regular[0] < 100_000, "{times:?}");
    assert!(
        regular.windows(2).all(|w| w[1] - w[0] >= 250_000),
        "{times:?}"
    );
    assert!(measurements.len() >= 10, "{times:?}");
    let last = measurements.last().unwrap();
    assert!(last["AppInfo"]["ElapsedTime"].as_i64().unwrap() >= 10_000_000);
    assert!(last["TCPInfo"]["BytesAcked"].as_i64().unwrap() > 0);
    wait_until(LIMIT, "the result", || ndt7_results(&daemon).len() == 1);
    let r = &ndt7_results(&daemon)[0];
    assert_eq!(r["name"], "den");
    assert_eq!(r["overlapped"], false);
}

/// Reads a download to its close: the binary messages and the parsed
/// measurements.
async fn read_download(socket: &mut ndt7::Socket) -> (Vec<Vec<u8>>, Vec<Value>) {
    let (mut binary, mut measurements) = (Vec::new(), Vec::new());
    tokio::time::timeout(LIMIT, async {
        while let Some(msg) = socket.next().await {
            match msg.expect("a clean stream") {
                Message::Binary(b) => binary.push(b.to_vec()),
                Message::Text(t) => measurements.push(serde_json::from_str::<Value>(&t).unwrap()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await
    .expect("the download ends by itself");
    (binary, measurements)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_goes_out_the_way_minus_r_tests_send_and_arrives_whole() {
    for (method, path) in [("sendfile", "sendfile"), ("copy", "copy")] {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(dir.path(), &["--send-method", method]);
        let mut socket = connect(daemon.http, "/ndt/v7/download", true)
            .await
            .unwrap();
        let (binary, measurements) = read_download(&mut socket).await;
        // Every message is the start of the same payload, framed whole
        // between the measurements.
        let longest = binary.iter().max_by_key(|b| b.len()).unwrap();
        assert!(longest.len() > 1 << 13, "{}", longest.len());
        assert!(binary.iter().all(|b| longest.starts_with(b)), "{method}");
        let sent: usize = binary.iter().map(Vec::len).sum();
        let last = measurements.last().unwrap();
        assert_eq!(last["AppInfo"]["NumBytes"].as_u64(), Some(sent as u64));
        daemon.wait_stderr(&format!("data_path=\"{path}\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iperf3_test_beside_an_ndt7_subtest_marks_both_and_progress_is_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let (mut events, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", daemon.http))
        .await
        .expect("the dashboard's websocket");
    let mut upload = connect(daemon.http, "/ndt/v7/upload?name=beside", true)
        .await
        .unwrap();
    // The upload sends while a stock client runs a short test.
    let port = daemon.port;
    let iperf = tokio::task::spawn_blocking(move || {
        crate::support::iperf3::client_json(port, &["-t", "2", "--extra-data", "iperf-beside"])
    });
    let sender = tokio::spawn(async move {
        let chunk = vec![7u8; 1 << 16];
        while upload.send(Message::binary(chunk.clone())).await.is_ok() {}
    });
    // A progress event names the dashboard's port.
    let http_port = daemon.http.port();
    tokio::time::timeout(LIMIT, async {
        while let Some(Ok(msg)) = events.next().await {
            let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) else {
                continue;
            };
            if v["type"] == "progress" && v["port"] == http_port && v["bps"].as_f64() > Some(0.0) {
                break;
            }
        }
    })
    .await
    .expect("an ndt7 progress event");
    iperf.await.unwrap();
    wait_until(LIMIT, "the upload recorded", || {
        ndt7_results(&daemon).len() == 1
    });
    sender.abort();
    let (_, body) = daemon.get("/api/results");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    let ndt = all.iter().find(|r| r["protocol"] == "ndt7").unwrap();
    let tcp = all.iter().find(|r| r["protocol"] == "TCP").unwrap();
    assert_eq!(ndt["overlapped"], true, "{ndt}");
    assert_eq!(tcp["overlapped"], true, "{tcp}");
}

#[test]
fn a_malformed_frame_records_nothing() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut tcp = std::net::TcpStream::connect(daemon.http).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        tcp,
        "GET /ndt/v7/upload HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        daemon.http,
        ndt7::SUBPROTOCOL
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(ndt7::SUBPROTOCOL),
        "{head}"
    );
    // A client frame must be masked; this one is not.
    tcp.write_all(&[0x82, 0x04, 1, 2, 3, 4]).unwrap();
    daemon.wait_stderr("ndt7: subtest dropped");
    // The server ends the connection.
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(ndt7_results(&daemon).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_measurements_log_a_bounded_readable_entry() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut upload = connect(daemon.http, "/ndt/v7/upload?name=hostile", true)
        .await
        .unwrap();
    // Sixty 8 KiB measurements nested 120 deep (each element indented by
    // hundreds of spaces when pretty-printed), and one nested 126 deep:
    // the deepest the message parse takes.
    let deep = |levels: usize, fill: usize| {
        let inner = vec!["0"; fill].join(",");
        format!(
            "{{\"a\":{}{inner}{}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let mut sent = 0;
    for _ in 0..60 {
        let text = deep(120, 3900);
        assert!(text.len() <= 8 * 1024);
        sent += text.len();
        upload.send(Message::text(text)).await.unwrap();
    }
    upload.send(Message::text(deep(126, 1))).await.unwrap();
    upload
        .send(Message::binary(vec![0u8; 1 << 16]))
        .await
        .unwrap();
    until_closed(&mut upload).await;
    wait_until(LIMIT, "the result", || ndt7_results(&daemon).len() == 1);
    let logged = std::fs::metadata(dir.path().join("ndt7.json"))
        .unwrap()
        .len();
    assert!(
        logged <= 384 * 1024,
        "{sent} bytes of measurements sent, {logged} bytes logged"
    );
    let id = ndt7_results(&daemon)[0]["id"].as_str().unwrap().to_string();
    let (code, body) = daemon.get(&format!("/api/results/{id}"));
    assert_eq!(code, 200, "{body}");
}
