//! Every route in-process through `warp::test`: status, content type and
//! shape, as the README's "Dashboard and HTTP API" and `docs/api.md`
//! describe them.

use serde_json::Value;
use warp::http::StatusCode;
use warp::test::request;

use crate::common::*;

fn json_of(res: &warp::http::Response<warp::hyper::body::Bytes>) -> Value {
    serde_json::from_slice(res.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(res.body())))
}

fn content_type(res: &warp::http::Response<warp::hyper::body::Bytes>) -> &str {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn assert_json_error(res: &warp::http::Response<warp::hyper::body::Bytes>, status: StatusCode) {
    assert_eq!(
        res.status(),
        status,
        "{}",
        String::from_utf8_lossy(res.body())
    );
    assert!(
        content_type(res).starts_with("application/json"),
        "{}",
        content_type(res)
    );
    let body = json_of(res);
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16());
}

#[tokio::test]
async fn index_is_the_embedded_page() {
    let env = Env::empty();
    let res = request().path("/").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("text/html"));
    let page = String::from_utf8_lossy(res.body());
    assert!(page.contains("id=\"latest\""), "{page}");
    assert!(page.contains("/assets/app.js"));
    assert!(res.headers().contains_key("cache-control"));
    let etag = res
        .headers()
        .get("etag")
        .expect("ETag")
        .to_str()
        .unwrap()
        .to_string();

    let again = request()
        .path("/")
        .header("if-none-match", &etag)
        .reply(&env.routes())
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.body().is_empty());
}

#[tokio::test]
async fn assets_have_content_types_and_caching_headers() {
    let env = Env::empty();
    for (path, ty) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let res = request().path(path).reply(&env.routes()).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            content_type(&res).starts_with(ty),
            "{path}: {}",
            content_type(&res)
        );
        assert!(res.headers().contains_key("etag"), "{path}");
        assert!(res.headers().contains_key("cache-control"), "{path}");
        assert!(!res.body().is_empty(), "{path}");
    }
    let missing = request().path("/assets/nope.js").reply(&env.routes()).await;
    assert_json_error(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn asset_paths_cannot_escape_the_embedded_dir() {
    let env = Env::empty();
    for path in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/%2E%2E%2FCargo.toml",
        "/assets/..%2fCargo.toml",
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%5cCargo.toml",
        "/assets/./app.js",
        "/assets/../index.html",
        "/assets/%2e%2e/src/main.rs",
    ] {
        let res = request().path(path).reply(&env.routes()).await;
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
        let body = String::from_utf8_lossy(res.body());
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path} leaked: {body}"
        );
    }
}

#[tokio::test]
async fn status_lists_every_port() {
    let env = Env::stock();
    let res = request().path("/api/status").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    let body = json_of(&res);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let ports = body["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    for (p, want) in ports.iter().zip([P1, P2]) {
        assert_eq!(p["port"], want);
        assert_eq!(p["state"], "idle");
        assert!(p["client"].is_null());
        assert!(p["name"].is_null());
    }
}

#[tokio::test]
async fn status_follows_a_running_test() {
    let env = Env::empty();
    let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    env.hub.test_started(P2, mapped, Some("dave".into()));
    env.hub.progress(P2, 9.4e8, 1.0);
    let body = json_of(&request().path("/api/status").reply(&env.routes()).await);
    let p = &body["ports"][1];
    assert_eq!(p["port"], P2);
    assert_eq!(p["state"], "running");
    assert_eq!(p["client"], "192.0.2.7", "IPv4-mapped shown as IPv4");
    assert_eq!(p["name"], "dave");
    assert_eq!(p["bps"], 9.4e8);
    assert_eq!(body["ports"][0]["state"], "idle");

    env.hub.test_ended(P2);
    let body = json_of(&request().path("/api/status").reply(&env.routes()).await);
    assert_eq!(body["ports"][1]["state"], "idle");
    assert!(body["ports"][1]["client"].is_null());
    assert!(body["ports"][1]["name"].is_null());
}

#[tokio::test]
async fn results_hold_every_stock_test_oldest_first() {
    let env = Env::stock();
    let res = request().path("/api/results").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    let all = json_of(&res);
    let all = all.as_array().unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, STOCK_NAMES);
    let stamps: Vec<_> = all
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    for r in all {
        for key in [
            "port",
            "timestamp",
            "name",
            "title",
            "client",
            "protocol",
            "duration",
            "streams",
            "reverse",
            "bidir",
            "send_bps",
            "receive_bps",
            "bytes_sent",
            "bytes_received",
            "retransmits",
            "jitter_ms",
            "lost_percent",
        ] {
            assert!(r.get(key).is_some(), "result lacks {key}: {r}");
        }
        assert_eq!(r["port"], P1);
        assert_eq!(r["client"], "127.0.0.1");
    }
    // alice: plain TCP upload; bob: -R download; =1+1: UDP; carol: bidir.
    assert!(all[0]["receive_bps"].as_f64().unwrap() > 0.0 && all[0]["send_bps"].is_null());
    assert!(all[1]["send_bps"].as_f64().unwrap() > 0.0 && all[1]["receive_bps"].is_null());
    assert_eq!(all[1]["title"], "kitchen");
    assert_eq!(all[2]["protocol"], "UDP");
    assert!(all[2]["jitter_ms"].is_number() && all[2]["lost_percent"].is_number());
    assert_eq!(all[3]["bidir"], true);
    assert!(all[3]["send_bps"].is_number() && all[3]["receive_bps"].is_number());
    assert_eq!(all[4]["streams"], 2);
}

#[tokio::test]
async fn results_filter_by_port_name_and_since() {
    let env = Env::stock();
    let get = |q: &'static str| {
        let routes = env.routes();
        async move { json_of(&request().path(q).reply(&routes).await) }
    };
    assert_eq!(
        get("/api/results?port=5201")
            .await
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        get("/api/results?port=5202")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let alice = get("/api/results?name=alice").await;
    assert_eq!(alice.as_array().unwrap().len(), 2);
    assert!(alice
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] == "alice"));
    assert_eq!(
        get("/api/results?name=%3D1%2B1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get("/api/results?since=0").await.as_array().unwrap().len(),
        5
    );
    assert_eq!(
        get("/api/results?since=99999999999")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        get("/api/results?port=5201&name=carol&since=0")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let all = get("/api/results").await;
    let last = all.as_array().unwrap().last().unwrap()["timestamp"]
        .as_i64()
        .unwrap();
    let path = format!("/api/results?since={last}");
    let recent = json_of(&request().path(&path).reply(&env.routes()).await);
    assert!(recent
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["timestamp"].as_i64().unwrap() >= last));
    assert!(!recent.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_result_queries_are_json_400s() {
    let env = Env::stock();
    for q in [
        "/api/results?port=abc",
        "/api/results?port=70000",
        "/api/results?port=",
        "/api/results?since=yesterday",
        "/api/results?since=nan",
        "/api/results?colour=blue",
    ] {
        let res = request().path(q).reply(&env.routes()).await;
        assert_json_error(&res, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn latest_and_table_have_one_entry_per_port() {
    let env = Env::stock();
    let res = request().path("/api/latest").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    let latest = json_of(&res);
    let latest = latest.as_array().unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0]["name"], "alice");
    assert_eq!(latest[0]["streams"], 2);
    assert!(latest[1].is_null());

    let res = request().path("/table").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    let table = json_of(&res);
    let table = table.as_array().unwrap();
    assert_eq!(table.len(), 2);
    let row = table[0].as_array().unwrap();
    assert_eq!(row.len(), 4);
    assert_eq!(row[0], latest[0]["timestamp"]);
    assert_eq!(row[1], latest[0]["send_bps"]);
    assert_eq!(row[2], latest[0]["receive_bps"]);
    assert_eq!(row[3], "alice");
    assert!(table[1].is_null());
}

#[tokio::test]
async fn csv_export() {
    let env = Env::stock();
    let res = request().path("/csv").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(
        content_type(&res).starts_with("text/csv"),
        "{}",
        content_type(&res)
    );
    assert_eq!(
        res.headers().get("content-disposition").unwrap(),
        "attachment; filename=iperf3_log.csv"
    );
    let text = String::from_utf8(res.body().to_vec()).unwrap();
    assert!(
        text.starts_with("Port,Name,Timestamp,Send rate (bps),Receive rate (bps)"),
        "{text}"
    );

    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), STOCK_NAMES.len());
    let names: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(
        names,
        ["alice", "bob", "'=1+1", "carol", "alice"],
        "formula neutralised"
    );
    for row in &rows {
        assert_eq!(&row[0], "5201");
        let ts = &row[2];
        assert!(
            chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").is_ok(),
            "timestamp {ts:?} is not YYYY-MM-DD HH:MM:SS"
        );
    }
    // Numbers stay numbers: alice received, sent nothing.
    assert!(rows[0][4].parse::<f64>().unwrap() > 0.0);
    assert_eq!(&rows[0][3], "");
}

#[tokio::test]
async fn csv_keeps_negative_numbers_as_numbers() {
    let env = Env::empty();
    env.hub.record(P1, &entry_named(STOCK, "-1.5"));
    env.hub.record(P1, &entry_named(STOCK, "@cmd"));
    env.hub.record(P1, &entry_named(STOCK, "+1+2"));
    let res = request().path("/csv").reply(&env.routes()).await;
    let mut reader = csv::Reader::from_reader(res.body().as_ref());
    let names: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[1].to_string())
        .collect();
    assert_eq!(names, ["-1.5", "'@cmd", "'+1+2"]);
}

#[tokio::test]
async fn clear_empties_latest_keeps_history_and_survives_a_restart() {
    let env = Env::stock();
    let res = request()
        .method("POST")
        .path("/api/clear")
        .reply(&env.routes())
        .await;
    assert_eq!(res.status(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    assert_eq!(json_of(&res), serde_json::json!([null, null]));

    let latest = json_of(&request().path("/api/latest").reply(&env.routes()).await);
    assert_eq!(latest, serde_json::json!([null, null]));
    let all = json_of(&request().path("/api/results").reply(&env.routes()).await);
    assert_eq!(all.as_array().unwrap().len(), 5, "history kept");
    let csv = request().path("/csv").reply(&env.routes()).await;
    assert_eq!(
        String::from_utf8_lossy(csv.body()).lines().count(),
        6,
        "CSV keeps every test"
    );

    for port in [P1, P2] {
        let log = std::fs::read_to_string(env.log_path(port)).unwrap();
        assert!(
            log.ends_with("{}\n"),
            "port {port} log ends with a clear marker: {log:?}"
        );
    }
    assert!(std::fs::read_to_string(env.log_path(P1))
        .unwrap()
        .starts_with(STOCK));

    // After a restart: still cleared, history still there.
    let env = env.restart();
    let latest = json_of(&request().path("/api/latest").reply(&env.routes()).await);
    assert_eq!(latest, serde_json::json!([null, null]));
    let all = json_of(&request().path("/api/results").reply(&env.routes()).await);
    assert_eq!(all.as_array().unwrap().len(), 5);

    // A test after the clear is the latest again, also after a restart.
    env.hub.record(P2, &entry_named(STOCK, "erin"));
    let env = env.restart();
    let latest = json_of(&request().path("/api/latest").reply(&env.routes()).await);
    assert!(latest[0].is_null());
    assert_eq!(latest[1]["name"], "erin");
    assert_eq!(latest[1]["port"], P2);
}

#[tokio::test]
async fn clear_refuses_cross_site_requests() {
    let env = Env::stock();
    let res = request()
        .method("POST")
        .path("/api/clear")
        .header("host", "192.168.1.5:8080")
        .header("origin", "http://evil.example")
        .reply(&env.routes())
        .await;
    assert_json_error(&res, StatusCode::FORBIDDEN);
    let latest = json_of(&request().path("/api/latest").reply(&env.routes()).await);
    assert_eq!(latest[0]["name"], "alice", "nothing cleared");

    let res = request()
        .method("POST")
        .path("/api/clear")
        .header("host", "192.168.1.5:8080")
        .header("origin", "http://192.168.1.5:8080")
        .reply(&env.routes())
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_are_json_errors() {
    let env = Env::empty();
    let res = request()
        .method("GET")
        .path("/api/clear")
        .reply(&env.routes())
        .await;
    assert_json_error(&res, StatusCode::METHOD_NOT_ALLOWED);
    let res = request()
        .method("POST")
        .path("/api/latest")
        .reply(&env.routes())
        .await;
    assert_json_error(&res, StatusCode::METHOD_NOT_ALLOWED);
    let res = request().path("/nope").reply(&env.routes()).await;
    assert_json_error(&res, StatusCode::NOT_FOUND);
    let res = request().path("/ws").reply(&env.routes()).await;
    assert_json_error(&res, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let env = Env::stock();
    env.hub
        .record(P2, &entry_named(STOCK, "quote\" back\\slash\nnewline"));
    env.hub.test_started(P1, "127.0.0.1".parse().unwrap(), None);
    let res = request().path("/metrics").reply(&env.routes()).await;
    assert_eq!(res.status(), 200);
    assert!(
        content_type(&res).starts_with("text/plain"),
        "{}",
        content_type(&res)
    );
    let text = String::from_utf8(res.body().to_vec()).unwrap();
    for family in [
        "# TYPE webperf3_last_test_throughput_bytes_per_second gauge",
        "# TYPE webperf3_tests_total counter",
        "# TYPE webperf3_test_throughput_bytes_per_second histogram",
        "# TYPE webperf3_build_info gauge",
    ] {
        assert!(text.contains(family), "{family}: {text}");
    }
    // Tests per port: the sum over the other labels.
    let tests_of = |port: u16| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("webperf3_tests_total{{port=\"{port}\",")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!((tests_of(5201), tests_of(5202)), (5.0, 1.0), "{text}");
    assert!(
        text.contains("webperf3_test_running{port=\"5201\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("webperf3_test_running{port=\"5202\"} 0\n"),
        "{text}"
    );
    // What a client named its test is never a label.
    assert!(!text.contains("alice") && !text.contains("quote"), "{text}");
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample: {line}");
    }
    // OpenMetrics when asked for, ending in `# EOF`.
    let res = request()
        .path("/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .reply(&env.routes())
        .await;
    assert!(content_type(&res).starts_with("application/openmetrics-text"));
    let text = String::from_utf8(res.body().to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE webperf3_tests counter\n"), "{text}");
}

#[tokio::test]
async fn a_failed_log_write_is_reported_and_the_result_still_shown() {
    let env = Env::empty();
    // A directory where the log file should be: every append fails.
    std::fs::create_dir(env.log_path(P1)).unwrap();
    env.hub.record(P1, &entry_named(STOCK, "frank"));

    let latest = json_of(&request().path("/api/latest").reply(&env.routes()).await);
    assert_eq!(
        latest[0]["name"], "frank",
        "result shown although not saved"
    );
    let status = json_of(&request().path("/api/status").reply(&env.routes()).await);
    let err = status["log_error"].as_str().expect("log_error set");
    assert!(err.contains("port-5201.json"), "{err}");

    // Fixed: the next successful write clears the error.
    std::fs::remove_dir(env.log_path(P1)).unwrap();
    env.hub.record(P1, &entry_named(STOCK, "grace"));
    let status = json_of(&request().path("/api/status").reply(&env.routes()).await);
    assert!(status["log_error"].is_null(), "{status}");
}
