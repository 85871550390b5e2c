//! What a person sees of a long history, timed in real headless Chromium
//! against the running binary: the first paint of the page (navigation
//! start to the history table having its rows and the chart drawn) and a
//! filter change (a name and a protocol chosen, to the rows and the chart
//! showing the filtered history). Each is the median of several runs; any
//! script error on the page fails the bench.
//!
//! The moment is taken in the page itself: a `MutationObserver` sees the
//! DOM reach the state, and the next animation frame (plus a task, so the
//! frame has been produced) counts as painted. The HTTP cache is off, so
//! every load is a first visit.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::daemon::Daemon;

/// Timed runs of each kind (after one to warm up).
const SAMPLES: usize = 5;
/// Longest any one paint may take before the bench gives up: the page
/// gives up after 60 s (`__within`, saying what it shows), the bench
/// waits for its answer a while longer.
const LIMIT: Duration = Duration::from_secs(90);
/// The name chosen in the filter (the bench names clients `host-00` to
/// `host-36`, see `entry`).
const WHO: &str = "host-07";
/// The window the page is drawn in, CSS pixels.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// What the page's target is, at a million logged tests.
const TARGET_MS: f64 = 1000.0;

/// Installed in every document before the page's own scripts: helpers that
/// read the history's state from the DOM the page draws (`history.js`,
/// `chart.js`), and `__painted`, which settles when the first history is
/// shown.
const WATCH: &str = r#"
window.__historyShown = () => {
  const chart = document.getElementById('chart');
  const title = document.getElementById('chart-title');
  if (!chart || !title || title.textContent.includes('loading')) return false;
  if (chart.dataset.drawn !== 'yes' && chart.dataset.drawn !== 'empty') return false;
  if (document.querySelector('#history tbody tr[data-port]')) return true;
  const empty = document.querySelector('#history tbody td.empty');
  return Boolean(empty && !empty.textContent.includes('Loading'));
};
window.__view = () => {
  const rows = [...document.querySelectorAll('#history tbody tr[data-port]')];
  const chart = document.getElementById('chart');
  const cell = (r, sel) => (r.querySelector(sel)?.textContent ?? '');
  return {
    rows: rows.length,
    names: [...new Set(rows.map((r) => cell(r, 'td.name')))],
    protocols: [...new Set(rows.map((r) => r.dataset.protocol))],
    title: document.getElementById('chart-title')?.textContent ?? '',
    drawn: chart?.dataset.drawn ?? '',
    points: Number(chart?.dataset.points ?? 0),
  };
};
// Settles with {ready, painted} (performance.now() times) once `shown()`
// holds, checked on every change of the DOM; with `fresh`, only after it
// did not hold at some point (the old view went away first).
window.__whenShown = (shown, fresh) => new Promise((resolve) => {
  let gone = !fresh;
  const observer = new MutationObserver(() => check());
  const check = () => {
    if (!shown()) { gone = true; return; }
    if (!gone) return;
    observer.disconnect();
    const ready = performance.now();
    requestAnimationFrame(() => setTimeout(() => resolve({ ready, painted: performance.now() }), 0));
  };
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  check();
});
// `promise`, or a failure after 60 s saying what the page shows.
window.__within = (promise) => Promise.race([promise, new Promise((_, reject) => setTimeout(
  () => reject(new Error(`history not shown in 60 s: ${JSON.stringify(
    { view: window.__view(), errors: window.__pageErrors })}`)), 60000))]);
window.__painted = window.__whenShown(window.__historyShown, false);
"#;

/// After a load: when the history was shown, first-contentful-paint, what
/// the page shows, and the API requests it made.
const PAINTED: &str = "window.__within(window.__painted).then((p) => ({
  ...p,
  fcp: performance.getEntriesByType('paint')
    .find((e) => e.name === 'first-contentful-paint')?.startTime ?? null,
  view: window.__view(),
  api: performance.getEntriesByType('resource')
    .filter((e) => new URL(e.name).pathname.startsWith('/api/'))
    .map((e) => ({ path: new URL(e.name).pathname + new URL(e.name).search,
                   start: e.startTime, end: e.responseEnd })),
}))";

/// One timed page action: `action` changes the page and the history is
/// then shown afresh; settles with the times from the action on.
fn timed(action: &str) -> String {
    format!(
        "(async () => {{
  const shown = window.__whenShown(window.__historyShown, true);
  const t0 = performance.now();
  {action}
  const {{ ready, painted }} = await window.__within(shown);
  return {{ ready: ready - t0, painted: painted - t0, view: window.__view() }};
}})()"
    )
}

/// Chooses `name` and `protocol` in the page's filter controls, as a
/// person does (the form's `change` event).
fn choose(name: &str, protocol: &str) -> String {
    timed(&format!(
        "document.getElementById('name-filter').value = {name:?};
  const protocol = document.getElementById('f-protocol');
  protocol.value = {protocol:?};
  protocol.dispatchEvent(new Event('change', {{ bubbles: true }}));"
    ))
}

/// The Reset button of the filters.
fn reset() -> String {
    timed("document.querySelector('#filters button[type=reset]').click();")
}

/// What the page showed at one moment (`__view`).
#[derive(Debug, Clone, Default)]
struct View {
    rows: u64,
    names: Vec<String>,
    protocols: Vec<String>,
    /// Tests the chart stands for: the count its title gives.
    total: u64,
    drawn: String,
    points: u64,
}

impl View {
    fn of(v: &Value) -> View {
        let strings = |k: &str| serde_json::from_value(v[k].clone()).unwrap_or_default();
        let title = v["title"].as_str().unwrap_or_default();
        let total = title
            .rsplit_once('(')
            .and_then(|(_, n)| n.trim_end_matches(')').split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no test count in the chart title {title:?}"));
        View {
            rows: v["rows"].as_u64().unwrap_or(0),
            names: strings("names"),
            protocols: strings("protocols"),
            total,
            drawn: v["drawn"].as_str().unwrap_or_default().to_string(),
            points: v["points"].as_u64().unwrap_or(0),
        }
    }
}

/// One run's figures, milliseconds.
struct Run {
    ready: f64,
    painted: f64,
    fcp: Option<f64>,
    view: View,
}

impl Run {
    fn of(v: &Value) -> Run {
        let ms = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"));
        Run {
            ready: ms("ready"),
            painted: ms("painted"),
            fcp: v["fcp"].as_f64(),
            view: View::of(&v["view"]),
        }
    }
}

/// Median (and range) of `f` over `runs`.
fn spread(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// How many of the `n` generated tests are `protocol` (and, given, of
/// client `name`): the generator's rule, checked against it once.
fn expected(n: usize, name: Option<&str>, protocol: &str) -> u64 {
    let templates = super::fixture_entries();
    let client = |i: usize| format!("host-{:02}", i % 37);
    let probe = (37..37 * templates.len())
        .find(|&i| i % 37 == 7 && templates[i % templates.len()].contains("\"extra_data\":"))
        .expect("a named fixture entry");
    assert!(
        super::entry(&templates, probe, 0).contains(&format!("\"{}\"", client(probe))),
        "the bench's client names are host-NN of i % 37"
    );
    let of = format!("\"protocol\":\t\"{protocol}\"");
    // Per template: is it `protocol`, and does it carry a name.
    let kinds: Vec<(bool, bool)> = templates
        .iter()
        .map(|t| (t.contains(&of), t.contains("\"extra_data\":")))
        .collect();
    (0..n)
        .filter(|&i| {
            let (same, named) = kinds[i % kinds.len()];
            same && name.is_none_or(|who| named && client(i) == who)
        })
        .count() as u64
}

/// Fails the bench if the page met a script error.
async fn no_errors(page: &mut Browser, when: &str) {
    let errors = page.errors().await;
    assert!(
        errors.is_empty(),
        "script errors on the page {when}: {errors:?}"
    );
}

/// Times the page over the daemon's history of `n` tests: first paint and
/// filter changes, printed as medians.
pub fn bench_page(daemon: &Daemon, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut page = Browser::blank().await;
        page.call("Network.enable", json!({})).await;
        page.call("Network.setCacheDisabled", json!({"cacheDisabled": true}))
            .await;
        // A desktop window: the chart as wide as on a laptop, so it asks
        // for as many buckets as it ever does.
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        page.add_script(WATCH).await;
        let all = first_paint(&mut page, daemon, n).await;
        for (name, protocol) in [(Some(WHO), "TCP"), (None, "UDP")] {
            filter_change(&mut page, n, &all, name, protocol).await;
        }
    });
}

/// Loads the page afresh, times each load from navigation start
/// (`performance.now()` counts from it) to the history shown, and prints
/// the median; returns what the page showed.
async fn first_paint(page: &mut Browser, daemon: &Daemon, n: usize) -> View {
    let mut paints = Vec::new();
    let mut api = Vec::new();
    for k in 0..=SAMPLES {
        let url = format!("http://{}/?load={k}", daemon.http);
        page.navigate(&url).await;
        page.eventually("location.search", json!(format!("?load={k}")))
            .await;
        let v = page.eval_settled(PAINTED, LIMIT).await;
        no_errors(page, "after loading").await;
        let run = Run::of(&v);
        assert!(run.view.rows > 0, "rows shown at first paint: {v}");
        assert_eq!(run.view.drawn, "yes", "the chart drawn at first paint: {v}");
        assert_eq!(run.view.total, n as u64, "the chart stands for every test");
        if k > 0 {
            paints.push(run);
            api = v["api"].as_array().cloned().unwrap_or_default();
        }
    }
    let (med, lo, hi) = spread(&paints, |r| r.painted);
    let (dom, _, _) = spread(&paints, |r| r.ready);
    let (fcp, _, _) = spread(&paints, |r| r.fcp.unwrap_or(f64::NAN));
    let view = &paints[0].view;
    println!(
        "{:<44} {med:.0} ms ({lo:.0}–{hi:.0}; DOM ready {dom:.0} ms, first contentful paint {fcp:.0} ms; {} rows, {} points drawn; median of {SAMPLES}; load average {}){}",
        format!("page first paint, {n} tests"),
        view.rows,
        view.points,
        load_average(),
        verdict(med, n),
    );
    let requests: Vec<String> = api
        .iter()
        .map(|r| {
            format!(
                "{} {:.0}–{:.0} ms",
                r["path"].as_str().unwrap_or("?"),
                r["start"].as_f64().unwrap_or(0.0),
                r["end"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    println!(
        "{:<44} {}",
        "  its API requests (last load)",
        requests.join(", ")
    );
    view.clone()
}

/// Times choosing `name` (if any) and `protocol` on the loaded page, from
/// the whole history (`all`) each time, with Reset between the runs (itself
/// timed); checks the filtered rows and chart and prints the medians.
async fn filter_change(
    page: &mut Browser,
    n: usize,
    all: &View,
    name: Option<&str>,
    protocol: &str,
) {
    let want = expected(n, name, protocol);
    let (mut changes, mut resets) = (Vec::new(), Vec::new());
    for k in 0..=SAMPLES {
        let v = page
            .eval_settled(&choose(name.unwrap_or(""), protocol), LIMIT)
            .await;
        no_errors(page, "after a filter change").await;
        let run = Run::of(&v);
        let shown = &run.view;
        assert_eq!(
            shown.total, want,
            "the chart's count of {name:?} {protocol}: {v}"
        );
        assert_eq!(shown.rows, want.min(all.rows), "a page of the rows: {v}");
        assert!(shown.total < all.total, "the history changed: {v}");
        if let Some(who) = name {
            assert_eq!(shown.names, [who], "only {who}'s rows: {v}");
        }
        assert_eq!(shown.protocols, [protocol], "only {protocol} rows: {v}");
        assert_eq!(shown.drawn, "yes", "the chart drawn: {v}");
        let back = Run::of(&page.eval_settled(&reset(), LIMIT).await);
        no_errors(page, "after Reset").await;
        assert_eq!(back.view.total, n as u64, "Reset shows every test again");
        if k > 0 {
            changes.push(run);
            resets.push(back);
        }
    }
    let (med, lo, hi) = spread(&changes, |r| r.painted);
    let (dom, _, _) = spread(&changes, |r| r.ready);
    let what = match name {
        Some(who) => format!("name {who} + {protocol}"),
        None => format!("protocol {protocol}"),
    };
    let view = &changes[0].view;
    println!(
        "{:<44} {med:.0} ms ({lo:.0}–{hi:.0}; DOM ready {dom:.0} ms; {} rows, {} points drawn, {} tests; median of {SAMPLES}; load average {}){}",
        format!("page filter {what}, {n} tests"),
        view.rows,
        view.points,
        view.total,
        load_average(),
        verdict(med, n),
    );
    let (med, lo, hi) = spread(&resets, |r| r.painted);
    println!(
        "{:<44} {med:.0} ms ({lo:.0}–{hi:.0}; {} points drawn)",
        "  and Reset back to every test", resets[0].view.points,
    );
}

/// The one-minute load average (other work on the machine moves the
/// figures).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').next().unwrap_or("?").to_string()
}

/// How a figure compares with the target at a million tests.
fn verdict(ms: f64, n: usize) -> &'static str {
    match (n >= 1_000_000, ms < TARGET_MS) {
        (false, _) => "",
        (true, true) => " — under the 1 s target",
        (true, false) => " — MISSES the 1 s target",
    }
}
