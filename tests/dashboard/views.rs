//! The views a person reads first, in real headless Chromium against the
//! binary and stock iperf3 clients: a test's headline sentence and rates in
//! large type (in its detail and in its history row), and the devices'
//! figures equal to what `GET /api/devices` says; a running test's
//! direction and planned length in the live status.

use std::time::Duration;

use serde_json::{json, Value};

use crate::chromium::Browser;
use crate::page::{detail, run_test};
use crate::support::daemon::Daemon;
use crate::support::iperf3;
use crate::support::wait::wait_until;

/// The text of the first element matching `selector`, or null.
async fn text_of(page: &mut Browser, selector: &str) -> Value {
    page.eval(&format!(
        "document.querySelector({selector:?})?.textContent ?? null"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_test_leads_with_its_headline() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let id = tokio::task::block_in_place(|| {
        run_test(&daemon, &["-t", "2", "-R", "--extra-data", "lee laptop"])
    });
    let answer = detail(&daemon, &id);
    let headline = answer["result"]["headline"]
        .as_str()
        .unwrap_or_else(|| panic!("a headline in {}", answer["result"]))
        .to_string();
    assert!(!headline.is_empty());

    // The detail: the sentence first, the rate in large type.
    let mut page = Browser::open(&format!("http://{}/#/test/{id}", daemon.http)).await;
    page.eventually(
        "document.getElementById('detail').dataset.state ?? null",
        json!("shown"),
    )
    .await;
    assert_eq!(
        text_of(&mut page, "#detail-headline").await,
        json!(headline)
    );
    let rate = page
        .eval(&format!(
            "webperf3.fmtRate({})",
            answer["result"]["send_bps"].as_f64().unwrap()
        ))
        .await;
    let big = text_of(&mut page, "#detail .big.rate-down .big-rate").await;
    assert_eq!(big, json!(format!("↓ {}", rate.as_str().unwrap())));
    // A download: its latency under load and grade, in words.
    let grade = answer["result"]["grade"]
        .as_str()
        .unwrap_or_else(|| panic!("a grade in {}", answer["result"]));
    let latency = text_of(&mut page, "#detail-latency").await;
    let latency = latency.as_str().unwrap_or_default();
    assert!(
        latency.starts_with("Latency while data flowed: ")
            && latency.contains(&format!("Grade {grade}: ")),
        "{latency:?}"
    );
    // The expert's figures wait behind "Details".
    assert_eq!(
        page.eval("document.getElementById('detail-more').open")
            .await,
        json!(false)
    );

    // The history row of the test says it too, and its name links to the device.
    page.navigate(&format!("http://{}/#/?name=lee%20laptop", daemon.http))
        .await;
    page.eventually(
        "document.querySelector('#history tbody .headline')?.textContent ?? null",
        json!(headline),
    )
    .await;
    assert_eq!(
        page.eval("document.querySelector('#history tbody a.device-link').getAttribute('href')")
            .await,
        json!("#/device/lee%20laptop")
    );
    assert_eq!(page.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_views_show_what_the_api_says() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    tokio::task::block_in_place(|| {
        run_test(&daemon, &["-t", "1", "--extra-data", "kim"]);
        run_test(&daemon, &["-t", "1", "-R", "--extra-data", "kim"]);
        run_test(&daemon, &["-t", "1", "--extra-data", "kimberly"]);
    });
    let (status, body) = daemon.get("/api/devices");
    assert_eq!(status, 200, "{body}");
    let devices: Value = serde_json::from_str(&body).unwrap();
    let list = devices
        .as_array()
        .or_else(|| devices["devices"].as_array())
        .unwrap_or_else(|| panic!("a list of devices: {body}"));
    let kim = list
        .iter()
        .find(|d| d["name"] == "kim")
        .unwrap_or_else(|| panic!("kim in {body}"))
        .clone();

    let mut page = Browser::open(&format!("http://{}/#/device/kim", daemon.http)).await;
    page.eventually(
        "document.getElementById('device').dataset.state ?? null",
        json!("shown"),
    )
    .await;
    // The figures the page shows, and the same figures of the API's answer
    // formatted by the page's own formatter.
    let shown = "Object.fromEntries([...document.querySelectorAll('#device [data-field]')]
                   .map(e => [e.dataset.field, e.textContent]))";
    let want = format!(
        "(d => {{ const p = webperf3.devices.period; const out = {{}};
           for (const k of ['days_7', 'days_30']) {{ const f = p(d[k]);
             out[k + '.download'] = webperf3.fmtRate(f.download);
             out[k + '.upload'] = webperf3.fmtRate(f.upload);
             out[k + '.tests'] = String(f.tests); }}
           return out; }})({kim})"
    );
    let want = page.eval(&want).await;
    let got = page.eval(shown).await;
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&got[k], v, "{k}: page {got}, api {kim}");
    }
    assert_eq!(want["days_7.tests"], json!("2"), "{kim}");

    // Side by side: kim's row says the same, and kimberly has her own.
    page.navigate(&format!("http://{}/#/devices", daemon.http))
        .await;
    page.eventually(
        "document.getElementById('devices').dataset.state ?? null",
        json!("shown"),
    )
    .await;
    let row = page
        .eval(
            "Object.fromEntries([...document.querySelectorAll('#devices tr[data-name=\"kim\"] [data-field]')]
               .map(e => [e.dataset.field, e.textContent]))",
        )
        .await;
    for (k, v) in want.as_object().unwrap() {
        if let Some(got) = row.get(k) {
            assert_eq!(got, v, "{k} in kim's row: {row}");
        }
    }
    assert_eq!(row["tests"], json!(kim["tests"].to_string()));
    assert_eq!(
        page.eval("document.querySelectorAll('#devices tr[data-name]').length")
            .await,
        json!(2)
    );
    assert_eq!(page.errors().await, Vec::<String>::new());
}

#[test]
fn a_running_test_says_which_way_and_how_long() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let port = daemon.port;
    let client = std::thread::spawn(move || {
        iperf3::client_json(port, &["-t", "3", "-O", "1", "-R", "--extra-data", "tv"])
    });
    let mut running = Value::Null;
    wait_until(Duration::from_secs(10), "the test running", || {
        let (_, body) = daemon.get("/api/status");
        let status: Value = serde_json::from_str(&body).unwrap();
        running = status["ports"][0].clone();
        running["state"] == "running"
    });
    assert_eq!(running["direction"], json!("download"), "{running}");
    assert_eq!(running["duration"], json!(4), "{running}");
    client.join().unwrap();
}
