//! The websocket (`GET /ws`) in-process: the first message, events after
//! hub calls, closing on shutdown; and the hub's broadcast under lag.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use warp::test::WsClient;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(5);

async fn next_json(client: &mut WsClient) -> Value {
    let msg = tokio::time::timeout(LIMIT, client.recv())
        .await
        .expect("a websocket message in time")
        .expect("websocket open");
    let text = msg.to_str().expect("a text message");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Skips messages until one of type `kind` arrives.
async fn next_of(client: &mut WsClient, kind: &str) -> Value {
    loop {
        let msg = next_json(client).await;
        if msg["type"] == kind {
            return msg;
        }
    }
}

async fn connect(env: &Env) -> WsClient {
    warp::test::ws()
        .path("/ws")
        .handshake(env.routes())
        .await
        .expect("handshake")
}

#[tokio::test]
async fn first_message_is_the_status() {
    let env = Env::stock();
    let mut client = connect(&env).await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["type"], "status");
    assert_eq!(hello["version"], env!("CARGO_PKG_VERSION"));
    let ports: Vec<_> = hello["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].clone())
        .collect();
    assert_eq!(ports, [P1, P2]);
}

#[tokio::test]
async fn result_after_record_and_cleared_after_clear() {
    let env = Env::empty();
    let mut client = connect(&env).await;
    assert_eq!(next_json(&mut client).await["type"], "status");

    env.hub.record(P2, &entry_named(STOCK, "heidi"));
    let msg = next_of(&mut client, "result").await;
    assert_eq!(msg["result"]["name"], "heidi");
    assert_eq!(msg["result"]["port"], P2);
    assert_eq!(msg["result"]["protocol"], "TCP");

    // A clear through the HTTP route reaches websocket clients too.
    let res = warp::test::request()
        .method("POST")
        .path("/api/clear")
        .reply(&env.routes())
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        next_of(&mut client, "cleared").await,
        serde_json::json!({"type": "cleared"})
    );
}

#[tokio::test]
async fn a_recorded_probe_is_a_result_message_with_its_kind_and_target() {
    let env = Env::empty();
    let mut client = connect(&env).await;
    assert_eq!(next_json(&mut client).await["type"], "status");
    // What a stock 3.12 client printed with --json: a probe's entry.
    let text = include_str!("../fixtures/stock-3.12-client.json");
    let entry = webperf3::json::from_value(&serde_json::from_str(text).unwrap());
    env.hub.record_probe(&entry);
    let msg = next_of(&mut client, "result").await;
    let r = &msg["result"];
    assert_eq!(
        (&r["kind"], &r["target"]),
        (&Value::from("probe"), &Value::from("127.0.0.1:15299"))
    );
    assert!(r["id"].as_str().unwrap().starts_with("probe-"), "{r}");
    assert_eq!((&r["port"], &r["client"]), (&Value::from(0), &Value::Null));
}

#[tokio::test]
async fn status_and_progress_during_a_test() {
    let env = Env::empty();
    let mut client = connect(&env).await;
    next_json(&mut client).await;

    env.hub
        .test_started(P1, "192.0.2.9".parse().unwrap(), Some("ivan".into()));
    let status = next_of(&mut client, "status").await;
    assert_eq!(status["ports"][0]["state"], "running");
    assert_eq!(status["ports"][0]["client"], "192.0.2.9");
    assert_eq!(status["ports"][0]["name"], "ivan");
    assert_eq!(
        status["ports"].as_array().unwrap().len(),
        2,
        "the full port list"
    );

    env.hub.progress(P1, 5.0e8, 1.0);
    let progress = next_of(&mut client, "progress").await;
    assert_eq!(
        progress,
        serde_json::json!({"type": "progress", "port": P1, "bps": 5.0e8, "seconds": 1.0})
    );

    env.hub.test_ended(P1);
    let status = next_of(&mut client, "status").await;
    assert_eq!(status["ports"][0]["state"], "idle");
}

#[tokio::test]
async fn shutdown_closes_websockets() {
    let env = Env::empty();
    let mut client = connect(&env).await;
    next_json(&mut client).await;
    env.shutdown.token().cancel();
    tokio::time::timeout(LIMIT, client.recv_closed())
        .await
        .expect("closed in time")
        .expect("closed without further messages");
}

#[tokio::test]
async fn a_slow_subscriber_lags_and_skips_ahead() {
    let env = Env::empty();
    let mut slow = env.hub.subscribe();
    // Far more events than the buffer holds; publishing never waits.
    for i in 0..10_000 {
        env.hub.progress(P1, f64::from(i), 1.0);
    }
    match slow.recv().await {
        Err(RecvError::Lagged(n)) => assert!(n > 0),
        other => panic!("expected a lag, got {other:?}"),
    }
    // After the lag it continues with what is still buffered, up to the newest.
    let mut last = None;
    while let Ok(event) = slow.try_recv() {
        last = Some(event);
    }
    let last = serde_json::to_value(last.expect("buffered events")).unwrap();
    assert_eq!(last["bps"], 9999.0);
}
