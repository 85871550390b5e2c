//! Headless Chromium driven over the DevTools protocol, for the page tests
//! and the page timing of the micro bench: one page, JavaScript evaluated
//! in it (awaiting its promises where asked), and its script errors
//! collected from each document's first line on.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::tools;

/// Chromium (or Chrome), or a failure saying how to install it.
pub fn chromium() -> PathBuf {
    tools::require(
        "Chromium",
        &[
            "/usr/bin/chromium",
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        "chromium",
    )
}

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

/// Installed in every page before its own scripts: collects what went wrong
/// in `window.__pageErrors`.
const CATCH_ERRORS: &str = "window.__pageErrors = [];
  addEventListener('error', (e) => __pageErrors.push(`error: ${e.message}`));
  addEventListener('unhandledrejection', (e) => __pageErrors.push(`rejected: ${e.reason}`));
  addEventListener('securitypolicyviolation', (e) => __pageErrors.push(`refused: ${e.violatedDirective}`));
  const consoleError = console.error;
  console.error = (...args) => { __pageErrors.push(args.map(String).join(' ')); consoleError(...args); };";

/// How long one DevTools command may take unless told otherwise.
const CALL_LIMIT: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium driven over the DevTools protocol: one page, and
/// JavaScript evaluated in it.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium and opens `url` in a new page, collecting the
    /// page's script errors from its first line on (see [`Browser::errors`]).
    pub async fn open(url: &str) -> Browser {
        let mut browser = Browser::blank().await;
        browser.navigate(url).await;
        browser
    }

    /// Starts Chromium with a new blank page whose documents collect their
    /// script errors; [`Browser::navigate`] then opens something in it
    /// (after, say, [`Browser::add_script`]).
    pub async fn blank() -> Browser {
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
        browser.add_script(CATCH_ERRORS).await;
        browser
    }

    /// Runs `source` in every document the page opens from now on, before
    /// the document's own scripts.
    pub async fn add_script(&mut self, source: &str) {
        self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": source}),
        )
        .await;
    }

    /// Sends one command (to the page once attached) and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.call_within(method, params, CALL_LIMIT).await
    }

    /// [`Browser::call`], failing if no answer comes within `limit`.
    pub async fn call_within(&mut self, method: &str, params: Value, limit: Duration) -> Value {
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
        let deadline = Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline.into(), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within {limit:?}"))
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

    /// The value of a JavaScript expression once the promise it gives has
    /// settled (within `limit`); fails if it throws or rejects.
    pub async fn eval_settled(&mut self, expression: &str, limit: Duration) -> Value {
        let result = self
            .call_within(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                limit,
            )
            .await;
        if let Some(thrown) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {thrown}");
        }
        result["result"]["value"].clone()
    }

    /// Waits (with a deadline) until `expression` evaluates to `want`.
    pub async fn eventually(&mut self, expression: &str, want: Value) {
        self.eventually_within(expression, want, Duration::from_secs(15))
            .await;
    }

    /// [`Browser::eventually`] with a deadline of `limit`.
    pub async fn eventually_within(&mut self, expression: &str, want: Value, limit: Duration) {
        let deadline = Instant::now() + limit;
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
