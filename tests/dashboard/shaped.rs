//! Bufferbloat the speed-test page can see: in a network namespace of its
//! own, `lo` (MTU 1500) is shaped to 10 Mbit/s by `tbf` with a deep queue
//! (`latency 600ms`) or a shallow one (`latency 5ms`), TCP uses a
//! loss-based congestion control (`reno`, which fills queues as most
//! senders do), and the binary and headless Chromium both run inside. The
//! page's run must show loaded latency near the queue's delay and a bad
//! grade through the deep queue, low latency and a good grade through the
//! shallow one, and rates within 10 % of the shaped rate. Needs root (for
//! the namespace) and iproute2.

use serde_json::Value;

use crate::speedtest_page::run_page;
use crate::support::browser::Browser;
use crate::support::daemon::Daemon;
use crate::support::netns::{Netns, DEEP, SHALLOW};

/// The shaped rate, bit/s.
const RATE: f64 = 10e6;

/// What one run showed: the recorded result and the page's own figures.
#[derive(Debug)]
struct Shown {
    result: Value,
    page: Value,
}

/// Runs the page's speed test inside `ns` and returns what it showed.
fn page_run(ns: &Netns, name: &'static str) -> Shown {
    ns.run(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(dir.path(), &[]);
        let page = runtime.block_on(async {
            let mut page = Browser::blank().await;
            run_page(&mut page, &daemon, name).await;
            let figures = page
                .eval(
                    "Object.fromEntries(['st-download', 'st-upload', 'st-latency', 'st-latency-sub',
                       'st-grade', 'st-verdict', 'st-goodfor', 'st-d-idle', 'st-d-down', 'st-d-up']
                       .map((id) => [id, document.getElementById(id).textContent]))",
                )
                .await;
            assert_eq!(page.errors().await, Vec::<String>::new());
            figures
        });
        let (code, body) = daemon.get(&format!("/api/results?name={name}"));
        assert_eq!(code, 200, "{body}");
        let mut all: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(all.len(), 1, "one result per run: {all:#?}");
        Shown {
            result: all.remove(0),
            page,
        }
    })
}

/// The worse of the run's two loaded latencies, ms.
fn loaded(r: &Value) -> f64 {
    let down = r["latency_down_ms"]
        .as_f64()
        .expect("latency during download");
    let up = r["latency_up_ms"].as_f64().expect("latency during upload");
    down.max(up)
}

fn assert_rates(shown: &Shown) {
    for field in ["send_bps", "receive_bps"] {
        let bps = shown.result[field].as_f64().unwrap();
        assert!(
            (bps - RATE).abs() <= 0.1 * RATE,
            "{field} {bps} not within 10 % of {RATE}: {shown:#?}"
        );
    }
}

#[test]
fn the_page_shows_bufferbloat_through_a_deep_queue_and_none_through_a_shallow_one() {
    let ns = Netns::new();
    ns.shape(DEEP);
    let deep = page_run(&ns, "deep-queue");
    eprintln!("deep queue: page {}, result {}", deep.page, deep.result);
    ns.shape(SHALLOW);
    let shallow = page_run(&ns, "shallow-queue");
    eprintln!(
        "shallow queue: page {}, result {}",
        shallow.page, shallow.result
    );

    for shown in [&deep, &shallow] {
        assert_rates(shown);
        // The page shows the grade the box recorded.
        assert_eq!(shown.page["st-grade"], shown.result["grade"], "{shown:#?}");
        // An idle line answers within a millisecond or two; a loaded
        // machine's browser may take longer to echo.
        assert!(
            shown.result["latency_idle_ms"].as_f64().unwrap() < 30.0,
            "an idle line answers at once: {shown:#?}"
        );
    }
    // The deep queue: loaded latency well past a hundred milliseconds
    // (reno fills the queue as far as its windows let it), a bad grade.
    assert!(loaded(&deep.result) > 100.0, "{deep:#?}");
    assert!(
        ["C", "D", "F"].contains(&deep.result["grade"].as_str().unwrap()),
        "{deep:#?}"
    );
    // The shallow queue holds about 30 ms at 10 Mbit/s: a good grade.
    assert!(loaded(&shallow.result) < 60.0, "{shallow:#?}");
    assert!(
        ["A+", "A", "B"].contains(&shallow.result["grade"].as_str().unwrap()),
        "{shallow:#?}"
    );
}
