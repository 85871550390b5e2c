//! The page in real headless Chromium: client-supplied names are shown as
//! text, never run as markup; the latest table has one row per port; the
//! page follows live events and reconnects after a server restart (driven
//! over the DevTools protocol). Plus an ignored helper that takes
//! screenshots for a person to look at.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use webperf3::shutdown::Shutdown;

use crate::common::*;

/// Flags every headless run gets: no sandbox (containers, root), nothing
/// that reaches out to the network on its own.
pub const HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
];

/// Runs headless Chromium on `url` with `extra` arguments and returns its
/// standard output; fails the test if it does not finish in time.
fn chromium_run(url: &str, extra: &[&str]) -> String {
    let chromium = chromium();
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The rendered DOM of `url` after its scripts ran.
fn dump_dom(url: &str) -> String {
    chromium_run(url, &["--virtual-time-budget=10000", "--dump-dom"])
}

/// The text between `start` (first occurrence) and the next `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the page:\n{text}"));
    let rest = &text[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} not after {start:?}"));
    &rest[..to]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_text_never_markup() {
    // One such test loaded from the logs at start-up, one recorded live.
    let env = Env::with_logs(&[P1, P2, 5203], &[(P1, XSS)]);
    env.hub.record(P2, &entry_named(STOCK, XSS_NAME));
    let url = format!("http://{}/", env.serve());
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .unwrap();

    assert!(
        dom.contains("<title>webperf3</title>"),
        "document title changed:\n{dom}"
    );
    assert!(
        !dom.contains("pwned</title>"),
        "the name's script ran:\n{dom}"
    );
    assert!(!dom.contains("<img"), "the name became an element:\n{dom}");

    let latest = section(&dom, "<table id=\"latest\"", "</table>");
    let body = section(latest, "<tbody>", "</tbody>");
    let rows: Vec<&str> = body.split("<tr").skip(1).collect();
    assert_eq!(rows.len(), 3, "one row per port:\n{body}");
    for (row, port) in rows.iter().zip([P1, P2, 5203]) {
        assert!(
            row.contains(&format!("data-port=\"{port}\"")),
            "row order: {row}"
        );
    }
    let escaped = XSS_NAME.replace('<', "&lt;").replace('>', "&gt;");
    assert!(
        rows[0].contains(&escaped),
        "the name is shown as text in its row:\n{}",
        rows[0]
    );
    // The history lists it as text too.
    let history = section(&dom, "<table id=\"history\"", "</table>");
    assert!(history.contains(&escaped), "{history}");
}

/// Writes `/tmp/dash.png` (1200×900), `/tmp/dash-full.png` (the whole page)
/// and `/tmp/dash-phone.png` (400 wide)
/// of the page with a few results, for a person to look at:
/// `cargo test --test dashboard screenshots -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots to /tmp for manual review"]
async fn screenshots() {
    let env = Env::with_logs(&[P1, P2, 5203, 5204], &[(P1, STOCK), (5203, XSS)]);
    env.hub.record(P2, &entry_named(STOCK, "judy-phone"));
    env.hub.test_started(
        5204,
        "::ffff:192.168.1.23".parse().unwrap(),
        Some("kate-laptop".into()),
    );
    env.hub.progress(5204, 8.12e8, 3.0);
    let url = format!("http://{}/", env.serve());
    tokio::task::spawn_blocking(move || {
        for (file, size) in [
            ("/tmp/dash.png", "1200,900"),
            ("/tmp/dash-full.png", "1200,2000"),
            ("/tmp/dash-phone.png", "400,2600"),
        ] {
            let _ = std::fs::remove_file(file);
            chromium_run(
                &url,
                &[
                    "--virtual-time-budget=10000",
                    &format!("--window-size={size}"),
                    &format!("--screenshot={file}"),
                ],
            );
            assert!(Path::new(file).exists(), "{file} written");
        }
    })
    .await
    .unwrap();
}

/// Headless Chromium driven over the DevTools protocol: one page, and
/// JavaScript evaluated in it.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium and opens `url` in a new page.
    async fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args(HEADLESS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium announces its DevTools endpoint on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium announced its DevTools endpoint");
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("DevTools connection");
        let mut browser = Browser {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": url}))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// Sends one command (to the page once attached) and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(msg.to_string()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools connection open")
                .unwrap();
            let Message::Text(text) = next else { continue };
            let answer: Value = serde_json::from_str(text.as_str()).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method} failed: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Waits (with a deadline) until `expression` evaluates to `want`.
    async fn eventually(&mut self, expression: &str, want: Value) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.eval(expression).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` is {got}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the dashboard of `env` at `addr` until `token` fires, retrying
/// the bind briefly (the previous server on that address may still be
/// letting go of it).
async fn serve_at(env: &Env, addr: SocketAddr, token: Shutdown) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match webperf3::http::bind(Some(addr)) {
            Ok(listener) => break listener,
            Err(e) => assert!(Instant::now() < deadline, "cannot rebind {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(webperf3::http::serve(listener, env.hub.clone(), token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_live_events_and_reconnects() {
    let env = Env::empty();
    let addr = env.serve();
    let mut page = Browser::open(&format!("http://{addr}/")).await;
    page.eventually(
        "document.getElementById('conn').dataset.state",
        json!("live"),
    )
    .await;
    page.eventually(
        "document.querySelectorAll('#latest tbody tr').length",
        json!(2),
    )
    .await;

    // A test starts: the port is busy, with whom, and its live rate.
    env.hub.test_started(
        P2,
        "::ffff:192.0.2.44".parse().unwrap(),
        Some(XSS_NAME.into()),
    );
    env.hub.progress(P2, 8.12e8, 2.0);
    let busy = format!("document.querySelector('#latest tr[data-port=\"{P2}\"]').className");
    page.eventually(&busy, json!("busy")).await;
    page.eventually(
        "document.querySelector('#now-running .rate')?.textContent",
        json!("812 Mbit/s"),
    )
    .await;
    let who = page
        .eval("document.querySelector('#now-running .who').textContent")
        .await;
    let who = who.as_str().unwrap();
    assert!(
        who.contains(XSS_NAME) && who.contains("192.0.2.44"),
        "{who}"
    );

    // It ends and is recorded: the row shows the name as text.
    env.hub.record(P2, &entry_named(STOCK, XSS_NAME));
    env.hub.test_ended(P2);
    page.eventually(&busy, json!("")).await;
    let name = format!(
        "document.querySelector('#latest tr[data-port=\"{P2}\"] td.name span')?.textContent"
    );
    page.eventually(&name, json!(XSS_NAME)).await;
    page.eventually(
        "document.querySelectorAll('#history tbody tr[data-port]').length",
        json!(1),
    )
    .await;
    assert_eq!(page.eval("document.title").await, json!("webperf3"));
    assert_eq!(
        page.eval("document.querySelectorAll('img').length").await,
        json!(0)
    );
    let option = "[...document.querySelectorAll('#name-filter option')].map(o => o.value)";
    assert_eq!(page.eval(option).await, json!(["", XSS_NAME]));

    // A clear (from anywhere) empties the row.
    env.hub.clear();
    let empty =
        format!("document.querySelector('#latest tr[data-port=\"{P2}\"] td.name').textContent");
    page.eventually(&empty, json!("no result yet")).await;

    // The server goes away: the page says so, then reconnects by itself
    // and catches up on what happened meanwhile.
    env.shutdown.token().cancel();
    page.eventually(
        "document.getElementById('conn').dataset.state",
        json!("offline"),
    )
    .await;
    env.hub.record(P1, &entry_named(STOCK, "back-again"));
    let token = Shutdown::new();
    let _stop = token.token().clone().drop_guard();
    serve_at(&env, addr, token).await;
    page.eventually(
        "document.getElementById('conn').dataset.state",
        json!("live"),
    )
    .await;
    let first = format!(
        "document.querySelector('#latest tr[data-port=\"{P1}\"] td.name span')?.textContent"
    );
    page.eventually(&first, json!("back-again")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_clear_token() {
    let env = Env::stock();
    let listener = webperf3::http::bind(Some(SocketAddr::from(([127, 0, 0, 1], 0)))).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let ctx = env
        .ctx
        .clone()
        .with_settings(&webperf3::http::HttpSettings {
            clear_token: Some("s3cret".into()),
            ..Default::default()
        });
    tokio::spawn(webperf3::http::serve_with(listener, ctx));
    let mut page = Browser::open(&format!("http://{addr}/")).await;
    let name = format!(
        "document.querySelector('#latest tr[data-port=\"{P1}\"] td.name span')?.textContent ?? null"
    );
    page.eventually(&name, json!("alice")).await;
    // The person confirms, types a wrong token, is asked again, types the
    // right one; every prompt is recorded.
    page.eval(
        "window.confirm = () => true;
         window.prompts = [];
         const answers = ['wrong', 's3cret'];
         window.prompt = (msg) => { window.prompts.push(msg); return answers.shift() ?? null; };
         document.getElementById('clear').click(); true",
    )
    .await;
    let empty =
        format!("document.querySelector('#latest tr[data-port=\"{P1}\"] td.name').textContent");
    page.eventually(&empty, json!("no result yet")).await;
    let prompts = page.eval("window.prompts").await;
    assert_eq!(
        prompts,
        json!([
            "Clearing needs the clear token:",
            "That token was not accepted. Clear token:"
        ])
    );
    // Cleared for real, on the server.
    assert!(env.hub.latest().iter().all(Option::is_none));
}
