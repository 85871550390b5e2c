//! The live dashboard in real headless Chromium: client-supplied names are
//! shown as text, never run as markup; the latest table has one row per
//! port; the page follows live events and reconnects after a server restart
//! (driven over the DevTools protocol). Plus an ignored helper that takes
//! screenshots for a person to look at. The detail view and the history at
//! scale are in `page.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use webperf3::shutdown::Shutdown;

use crate::chromium::{dump_dom, screenshot, Browser};
use crate::common::*;

/// The headless flags, also used by the speed-test page tests.
#[allow(unused_imports)]
pub use crate::chromium::HEADLESS;

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
        for (file, width, height) in [
            ("/tmp/dash.png", 1200, 900),
            ("/tmp/dash-full.png", 1200, 2000),
            ("/tmp/dash-phone.png", 400, 2600),
        ] {
            screenshot(&url, Path::new(file), width, height);
        }
    })
    .await
    .unwrap();
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

    // A test starts: the port is busy, with whom, which way, its live
    // rate and the time left.
    let plan = webperf3::hub::Plan {
        direction: Some("download"),
        duration: Some(10),
    };
    env.hub.test_started_with(
        P2,
        "::ffff:192.0.2.44".parse().unwrap(),
        Some(XSS_NAME.into()),
        plan,
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
        .eval("document.querySelector('#now-running .live').textContent")
        .await;
    let who = who.as_str().unwrap();
    for want in [XSS_NAME, "192.0.2.44", "downloading", "8 s left of 10 s"] {
        assert!(who.contains(want), "{want} in {who}");
    }

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
    let option = "[...document.querySelectorAll('#names option')].map(o => o.value)";
    assert_eq!(page.eval(option).await, json!([XSS_NAME]));
    assert_eq!(page.errors().await, Vec::<String>::new());

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
