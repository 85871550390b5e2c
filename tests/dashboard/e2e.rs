//! The real binary with a stock iperf3 client: live progress and the result
//! reach a websocket client, `/api/latest` shows the test, SIGTERM ends the
//! program cleanly, and a restart shows the same history.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// A running `webperf3` on loopback with its own ports and log dir.
struct Daemon {
    child: Child,
    /// The first iperf3 port.
    port: u16,
    /// The dashboard.
    http: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// `n` consecutive ports free for TCP and UDP on loopback (as far as can
/// be known before the program binds them; [`Daemon::start`] retries).
fn free_ports(n: u16) -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if u32::from(first) + u32::from(n) > 65535 {
            continue;
        }
        let all_free = (first..first + n).all(|p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if all_free {
            return first;
        }
    }
}

impl Daemon {
    /// Starts the binary serving `servers` ports, logging into `log_dir`,
    /// and waits until the dashboard answers.
    fn start(servers: u16, log_dir: &Path) -> Daemon {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_ports(servers);
            let http_port = free_ports(1);
            let http = SocketAddr::from(([127, 0, 0, 1], http_port));
            let mut child = Command::new(env!("CARGO_BIN_EXE_webperf3"))
                .arg("--port")
                .arg(port.to_string())
                .arg("--servers")
                .arg(servers.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--http")
                .arg(http.to_string())
                .arg("--log-dir")
                .arg(log_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start webperf3");
            let stderr = Arc::new(Mutex::new(String::new()));
            let mut pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            let mut daemon = Daemon {
                child,
                port,
                http,
                stderr,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = daemon.child.try_wait().unwrap() {
                    last_err = format!("webperf3 exited ({status}): {}", daemon.stderr());
                    break;
                }
                if http_get(http, "/api/status").is_ok_and(|r| r.status == 200) {
                    return daemon;
                }
                assert!(
                    Instant::now() < deadline,
                    "webperf3 did not come up: {}",
                    daemon.stderr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last_err.contains("in use") {
                break;
            }
        }
        panic!("{last_err}");
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status (within a deadline).
    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut status = None;
        let child = &mut self.child;
        wait_until(
            Duration::from_secs(10),
            "webperf3 to exit after SIGTERM",
            || {
                status = child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let iperf3 = iperf3();
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(2, dir.path());
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
        daemon.stderr()
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
    let daemon = Daemon::start(2, dir.path());
    let all = http_get(daemon.http, "/api/results").unwrap().json();
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, ["e2e-alice"]);
}
