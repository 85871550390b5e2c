//! What anyone on the LAN can do to the dashboard: the clear token, paths
//! that try to leave the embedded files or the log dir (on a raw socket, as
//! a hostile client sends them), and the bounds on connections and on slow
//! or idle ones.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use warp::http::StatusCode;
use warp::test::request;
use webperf3::http::{Context, HttpSettings, MAX_CONNECTIONS};

use crate::common::{entry_named, Env, P1, STOCK};
use crate::support::http::{http_get, http_request, status_code};
use crate::support::wait::wait_until;

fn with_token(env: &Env, token: &str) -> Context {
    env.ctx.clone().with_settings(&HttpSettings {
        clear_token: Some(token.into()),
        ..Default::default()
    })
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e})"))
}

#[tokio::test]
async fn clear_needs_the_token_when_one_is_set() {
    let env = Env::stock();
    let routes = webperf3::http::routes(with_token(&env, "s3cret-Token"));
    let status = request().path("/api/status").reply(&routes).await;
    assert_eq!(json(status.body())["clear_protected"], true);

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-Toke"),
        Some("Bearer s3cret-TokenX"),
        Some("Bearer s3cret-token"),
        Some("Basic czNjcmV0LVRva2Vu"),
        Some("s3cret-Token"),
        Some("Bearer"),
    ] {
        let mut req = request().method("POST").path("/api/clear");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.reply(&routes).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"webperf3\""
        );
        let body = json(res.body());
        assert_eq!(body["status"], 401);
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }
    // Nothing was cleared, nothing written.
    let latest = request().path("/api/latest").reply(&routes).await;
    assert!(!json(latest.body())[0].is_null());
    let log = std::fs::read_to_string(env.log_path(P1)).unwrap();
    assert_eq!(log, STOCK);

    let res = request()
        .method("POST")
        .path("/api/clear")
        .header("authorization", "Bearer s3cret-Token")
        .reply(&routes)
        .await;
    assert_eq!(res.status(), 200);
    assert!(json(res.body())[0].is_null());
}

#[tokio::test]
async fn without_a_token_clear_is_open_and_status_says_so() {
    let env = Env::stock();
    let routes = env.routes();
    let status = request().path("/api/status").reply(&routes).await;
    assert_eq!(json(status.body())["clear_protected"], false);
    let res = request()
        .method("POST")
        .path("/api/clear")
        .reply(&routes)
        .await;
    assert_eq!(res.status(), 200);
    // An empty token configured is no token.
    let routes = webperf3::http::routes(with_token(&env, ""));
    let status = request().path("/api/status").reply(&routes).await;
    assert_eq!(json(status.body())["clear_protected"], false);
}

/// Sends `raw` as the whole request and returns the status code.
fn raw_status(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    (status_code(&text).unwrap_or(0), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_paths_never_leave_the_assets_or_the_log_dir() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("port-5201.json"), STOCK).unwrap();
    let log_dir = webperf3::files::log_dir::LogDir::open(&logs).unwrap();
    let loaded = log_dir.load(&[5201, 5202]);
    let hub = webperf3::hub::Hub::new(log_dir, loaded.store);
    let shutdown = webperf3::shutdown::Shutdown::new();
    let _stop = shutdown.token().clone().drop_guard();
    let listener = webperf3::http::bind(Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(webperf3::http::serve(listener, hub, shutdown.clone()));

    let requests = tokio::task::spawn_blocking(move || {
        for path in [
            "/assets/../Cargo.toml",
            "/assets/../../../../../../etc/passwd",
            "/assets/..%2f..%2f..%2fetc%2fpasswd",
            "/assets/%2e%2e/%2e%2e/Cargo.toml",
            "/assets/....//....//etc/passwd",
            "/assets/%252e%252e/Cargo.toml",
            "/assets/app.js%00.png",
            "/assets/\\..\\..\\Cargo.toml",
            "//etc/passwd",
            "/../../../etc/passwd",
            "/assets//etc/passwd",
            "/assets/%2fetc%2fpasswd",
        ] {
            let (code, text) = raw_status(
                addr,
                &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
            );
            assert!((400..500).contains(&code), "{path}: {code}");
            assert!(
                !text.contains("root:") && !text.contains("[package]"),
                "{path} leaked: {text}"
            );
        }
        // Writes: only clear writes, and only the served ports' logs.
        for (method, path) in [
            ("POST", "/api/clear/../../x"),
            ("POST", "/api/../api/clear/%2e%2e"),
            ("PUT", "/api/clear"),
            ("PUT", "/port-5201.json"),
            ("DELETE", "/api/results"),
            ("POST", "/csv"),
            ("POST", "/assets/x.js"),
        ] {
            let (code, _) = raw_status(
                addr,
                &format!(
                    "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd"
                ),
            );
            assert!(code >= 400, "{method} {path}: {code}");
        }
        // A query is ignored: clear writes the served ports' logs only.
        let clear = http_request(addr, "POST", "/api/clear?port=../../../x&file=/etc/x").unwrap();
        assert_eq!(clear.status, 200);
    });
    requests.await.unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The log index, written at load, is the program's own cache.
        .filter(|name| name != ".index")
        .collect();
    names.sort();
    assert_eq!(names, ["port-5201.json", "port-5202.json"]);
    let outside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(outside.len(), 1, "only the log dir in its parent");
}

/// Serves `env` for real with `settings`; returns the address.
fn serve_with(env: &Env, settings: HttpSettings) -> SocketAddr {
    let listener = webperf3::http::bind(Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let ctx = env.ctx.clone().with_settings(&settings);
    tokio::spawn(webperf3::http::serve_with(listener, ctx));
    addr
}

/// Whether the server closed `conn` (EOF or reset) within `limit`.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let env = Env::stock();
    let addr = serve_with(
        &env,
        HttpSettings {
            header_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    );
    tokio::task::spawn_blocking(move || {
        // Connected, nothing sent.
        let mut idle = TcpStream::connect(addr).unwrap();
        // Half a header, then nothing (slowloris).
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n")
            .unwrap();
        // Kept alive after one answered request, then idle.
        let mut kept = TcpStream::connect(addr).unwrap();
        kept.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        for conn in [&mut idle, &mut slow, &mut kept] {
            assert!(closed_within(conn, Duration::from_secs(5)));
        }
        assert_eq!(http_get(addr, "/api/status").unwrap().status, 200);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let env = Env::stock();
    let addr = serve_with(
        &env,
        HttpSettings {
            header_timeout: Duration::from_secs(30),
            ..Default::default()
        },
    );
    tokio::task::spawn_blocking(move || {
        // Every permit held by an idle connection...
        let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        // ...so one more is closed without an answer, and quickly (the
        // accept loop takes the held ones first).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        assert!(closed_within(&mut extra, Duration::from_secs(10)));
        assert!(Instant::now() < deadline);
        // A held connection is still served.
        let first = &mut held[0];
        first
            .write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Once they go, the dashboard answers everyone again.
        held.clear();
        wait_until(Duration::from_secs(10), "a free connection slot", || {
            http_get(addr, "/api/status").is_ok_and(|r| r.status == 200)
        });
    })
    .await
    .unwrap();
    // The hub saw nothing of it.
    env.hub.record(P1, &entry_named(STOCK, "after"));
}
