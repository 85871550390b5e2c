//! Headless Chromium for the page tests: a one-shot run (the DOM after the
//! scripts ran, or a screenshot) and a page driven over the DevTools
//! protocol, with JavaScript evaluated in it and its script errors
//! collected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::chromium;

/// Installed in every page before its own scripts: collects what went wrong
/// in `window.__pageErrors`.
const CATCH_ERRORS: &str = "window.__pageErrors = [];
  addEventListener('error', (e) => __pageErrors.push(`error: ${e.message}`));
  addEventListener('unhandledrejection', (e) => __pageErrors.push(`rejected: ${e.reason}`));
  addEventListener('securitypolicyviolation', (e) => __pageErrors.push(`refused: ${e.violatedDirective}`));
  const consoleError = console.error;
  console.error = (...args) => { __pageErrors.push(args.map(String).join(' ')); consoleError(...args); };";

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
pub fn chromium_run(url: &str, extra: &[&str]) -> String {
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
pub fn dump_dom(url: &str) -> String {
    chromium_run(url, &["--virtual-time-budget=10000", "--dump-dom"])
}

/// Headless Chromium driven over the DevTools protocol: one page, and
/// JavaScript evaluated in it.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium and opens `url` in a new page, collecting the
    /// page's script errors from its first line on (see [`Browser::errors`]).
    pub async fn open(url: &str) -> Browser {
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
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({})).await;
        browser
            .call(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({"source": CATCH_ERRORS}),
            )
            .await;
        browser.call("Page.navigate", json!({"url": url})).await;
        browser
    }

    /// Sends one command (to the page once attached) and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Waits (with a deadline) until `expression` evaluates to `want`.
    pub async fn eventually(&mut self, expression: &str, want: Value) {
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

    /// Every script error the page met so far: uncaught exceptions,
    /// rejected promises, `console.error` calls and refused content
    /// (Content-Security-Policy violations).
    pub async fn errors(&mut self) -> Vec<String> {
        let v = self
            .eval("window.__pageErrors ?? ['error catcher missing']")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Opens `url` in the same page (a new document).
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a PNG of `url` at `width`×`height` CSS pixels to `file`, after
/// the page had time to load and draw.
pub fn screenshot(url: &str, file: &Path, width: u32, height: u32) {
    let _ = std::fs::remove_file(file);
    chromium_run(
        url,
        &[
            "--virtual-time-budget=10000",
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", file.display()),
        ],
    );
    assert!(file.exists(), "{} written", file.display());
}
