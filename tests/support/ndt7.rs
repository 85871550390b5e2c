//! ndt7 peers: M-Lab's Rust command-line client (`ndt7-client`, from
//! crates.io) and a websocket connection to the ndt7 routes for tests that
//! need to misbehave or hold a subtest open.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::tools;

/// The websocket subprotocol of ndt7.
pub const SUBPROTOCOL: &str = "net.measurementlab.ndt.v7";

/// A websocket to an ndt7 route.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `ndt7-client` binary, or a failure saying how to install it.
pub fn require_client() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = format!("{home}/.cargo/bin/ndt7-client");
    tools::find(&["ndt7-client", &cargo_bin]).unwrap_or_else(|| {
        panic!(
            "this test needs ndt7-client, which is not installed; \
             install it with: cargo install ndt7-client (scripts/test.sh does)"
        )
    })
}

/// Runs `ndt7-client` against `addr` (plain ws, no locate) with `extra`
/// arguments and returns its JSON summary.
pub fn run_client(addr: SocketAddr, extra: &[&str]) -> Value {
    run(addr, "--no-tls", extra)
}

/// Runs `ndt7-client` against `addr` over `wss://`, taking any certificate
/// (`--no-verify`), and returns its JSON summary.
pub fn run_client_wss(addr: SocketAddr, extra: &[&str]) -> Value {
    run(addr, "--no-verify", extra)
}

fn run(addr: SocketAddr, transport: &str, extra: &[&str]) -> Value {
    let out = Command::new(require_client())
        .args([
            "--server",
            &addr.to_string(),
            "--no-locate",
            transport,
            "--format",
            "json",
        ])
        .arg("--quiet")
        .args(extra)
        .output()
        .expect("ndt7-client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ndt7-client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary is the last JSON document on stdout.
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .or_else(|| serde_json::from_str(stdout.trim()).ok())
        .unwrap_or_else(|| panic!("no JSON from ndt7-client: {stdout}"))
}

/// Opens `ws://addr{path}` asking for the ndt7 subprotocol (or not).
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    subprotocol: bool,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a websocket request");
    if subprotocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The HTTP status a refused upgrade answered, and its body.
pub fn refusal(error: tokio_tungstenite::tungstenite::Error) -> (u16, String) {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => (
            response.status().as_u16(),
            response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        ),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}
