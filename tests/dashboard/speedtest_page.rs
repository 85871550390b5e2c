//! The speed-test screen (`#/speedtest`) in real headless Chromium against
//! the binary, at a phone's width: it shows only the speed test, with
//! labelled tiles and no jargon; a run of the page is one history row with
//! both rates, idle and loaded latency and a grade, the page shows that
//! grade and links to the run, nothing on it shifts while it runs, and the
//! link opens the run's detail with its latency chart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::daemon::Daemon;

/// A run (two seconds idle, two ten-second subtests, at 10 Mbit/s too),
/// retries and start-up on a busy machine, and the recorded run's appearance.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// Sums the page's layout shifts (as Lighthouse counts them: not those
/// right after input) into `window.__cls`.
const COUNT_SHIFTS: &str = "window.__cls = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
  }).observe({type: 'layout-shift', buffered: true});";

/// Words of the iperf3 dashboard and jargon the speed-test screen must
/// not show.
const NOT_ON_SCREEN: [&str; 6] = [
    "iperf3 -c",
    "Clear table",
    "History",
    "TCP_INFO",
    "RTT",
    "Retransmit",
];

/// A page at a phone's size (390×844 CSS pixels) that counts layout shifts.
async fn phone() -> Browser {
    let mut page = Browser::blank().await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await;
    page.add_script(COUNT_SHIFTS).await;
    page
}

/// Opens the speed test of `daemon` in `page` with `autostart` under
/// `name`, and waits for the run to end.
pub async fn run_page(page: &mut Browser, daemon: &Daemon, name: &str) {
    page.navigate(&format!(
        "http://{}/#/speedtest?name={name}&autostart=1",
        daemon.http
    ))
    .await;
    page.eventually_within(
        "document.getElementById('speedtest')?.dataset.state ?? null",
        json!("done"),
        RUN_LIMIT,
    )
    .await;
}

/// The text a person sees on the screen (hidden elements have none).
async fn visible_text(page: &mut Browser) -> String {
    page.eval("document.body.innerText")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speed_test_screen_shows_only_the_speed_test_on_a_phone() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut page = phone().await;
    page.navigate(&format!("http://{}/#/speedtest", daemon.http))
        .await;
    // The scripts ran and the router showed the view.
    page.eventually_within("document.readyState === 'complete' && !document.getElementById('speedtest').closest('[hidden]')",
        json!(true),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('view-home').hidden")
            .await,
        json!(true),
        "the dashboard's sections are not under the speed test"
    );
    let text = visible_text(&mut page).await;
    for word in NOT_ON_SCREEN {
        assert!(!text.contains(word), "{word:?} on the screen:\n{text}");
    }
    // Each tile's label is on screen, inside the phone's width.
    let tiles = page
        .eval(
            "[...document.querySelectorAll('#speedtest .tile')].map((t) => {
               const r = t.getBoundingClientRect();
               return [t.querySelector('.tile-label').innerText, r.width > 80 && r.right <= 390];
             })",
        )
        .await;
    assert_eq!(
        tiles,
        json!([["Download", true], ["Upload", true], ["Latency", true]])
    );
    // The page's own size: nothing wider than the phone.
    assert_eq!(
        page.eval("document.documentElement.scrollWidth <= 390")
            .await,
        json!(true)
    );
    assert_eq!(page.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_the_page_is_one_result_with_latency_a_grade_and_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let name = "hall-phone";
    let mut page = phone().await;
    run_page(&mut page, &daemon, name).await;

    // One history row for the run, with both directions and its latency.
    let (code, body) = daemon.get(&format!("/api/results?name={name}"));
    assert_eq!(code, 200, "{body}");
    let results: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(results.len(), 1, "one result per run: {results:#?}");
    let run = &results[0];
    assert_eq!(run["protocol"], "ndt7");
    for field in [
        "send_bps",
        "receive_bps",
        "latency_idle_ms",
        "latency_down_ms",
        "latency_up_ms",
    ] {
        assert!(
            run[field].as_f64().is_some_and(|v| v > 0.0),
            "{field}: {run:#}"
        );
    }
    let grade = run["grade"].as_str().expect("a grade");
    assert!(["A+", "A", "B", "C", "D", "F"].contains(&grade), "{grade}");
    let id = run["id"].as_str().unwrap();

    // The page shows that run: its grade and a link to it.
    assert_eq!(
        page.eval("document.getElementById('st-grade').textContent")
            .await,
        json!(grade)
    );
    assert_eq!(
        page.eval("document.getElementById('st-share').getAttribute('href')")
            .await,
        json!(format!("#/test/{id}"))
    );
    let text = visible_text(&mut page).await;
    for word in NOT_ON_SCREEN {
        assert!(!text.contains(word), "{word:?} on the screen:\n{text}");
    }
    // Nothing moved while the figures changed.
    let shift = page.eval("window.__cls").await.as_f64().unwrap();
    assert!(shift < 0.1, "layout shift {shift}");

    // The link opens the run whole: both directions, the latency chart.
    page.eval("document.getElementById('st-share').click(); true")
        .await;
    page.eventually_within(
        "document.getElementById('detail')?.dataset.state ?? null",
        json!("shown"),
        Duration::from_secs(15),
    )
    .await;
    page.eventually_within(
        "document.getElementById('run-chart')?.dataset.drawn ?? null",
        json!("yes"),
        Duration::from_secs(15),
    )
    .await;
    // Its points are the latency socket's round trips, idle ones included.
    assert_eq!(
        page.eval("document.querySelector('#run .legend').textContent.includes('Idle')")
            .await,
        json!(true)
    );
    let text = visible_text(&mut page).await;
    for word in ["Download", "Upload", "Latency during download", grade] {
        assert!(text.contains(word), "{word:?} not in the detail:\n{text}");
    }
    for word in ["Direction", "(-b)", "No intervals"] {
        assert!(!text.contains(word), "{word:?} in the detail:\n{text}");
    }
    assert_eq!(page.errors().await, Vec::<String>::new());
}
