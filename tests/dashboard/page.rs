//! The page's views in real headless Chromium against the real binary:
//! one test in detail at `/#/test/<id>` (stock iperf3 clients make the
//! tests), the history of a million logged tests drawn quickly and without
//! a script error, and an ignored helper writing screenshots of the detail
//! view for a person to look at.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chromium::{screenshot, Browser};
use crate::history_gen::{name_of, write_history};
use crate::support::daemon::{Daemon, Launch};
use crate::support::iperf3;

/// The id of the latest test on the daemon's port.
fn latest_id(daemon: &Daemon) -> String {
    let (status, body) = daemon.get("/api/latest");
    assert_eq!(status, 200, "{body}");
    let latest: Value = serde_json::from_str(&body).unwrap();
    let id = latest[0]["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "the latest result has an id: {body}");
    id
}

/// Runs a stock client test on the daemon's port and returns its id.
pub(crate) fn run_test(daemon: &Daemon, extra: &[&str]) -> String {
    iperf3::client_json(daemon.port, extra);
    // The result is recorded right after the client finishes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = daemon.get("/api/latest");
        let latest: Value = serde_json::from_str(&body).unwrap();
        let name = extra
            .iter()
            .position(|a| *a == "--extra-data")
            .map(|i| extra[i + 1]);
        if latest[0]["name"].as_str() == name {
            return latest_id(daemon);
        }
        assert!(Instant::now() < deadline, "test not recorded: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The detail answer of `id`, as the server gives it.
pub(crate) fn detail(daemon: &Daemon, id: &str) -> Value {
    let (status, body) = daemon.get(&format!("/api/results/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// How many pixels of a canvas are not transparent (the chart was drawn).
const INKED: &str = "(() => { const c = document.getElementById('detail-chart');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1; return n; })()";

/// How many elements match `selector` in the page.
async fn count(page: &mut Browser, selector: &str) -> u64 {
    let v = page
        .eval(&format!("document.querySelectorAll({selector:?}).length"))
        .await;
    v.as_u64().unwrap()
}

/// The text of each element matching `selector`.
async fn texts(page: &mut Browser, selector: &str) -> Vec<String> {
    let v = page
        .eval(&format!(
            "[...document.querySelectorAll({selector:?})].map(e => e.textContent)"
        ))
        .await;
    serde_json::from_value(v).unwrap()
}

/// Waits until the detail view shows the test `id`.
async fn wait_detail(page: &mut Browser, id: &str) {
    // The address may change within the document: wait for this id.
    page.eventually(
        "(({state, id}) => [state ?? null, id ?? null])(document.getElementById('detail').dataset)",
        json!(["shown", id]),
    )
    .await;
    page.eventually(
        "document.getElementById('detail-chart').dataset.drawn ?? null",
        json!("yes"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_test_in_detail() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let name = "<i>dana</i> & co";
    let tcp = tokio::task::block_in_place(|| {
        run_test(&daemon, &["-t", "3", "-R", "-P", "2", "--extra-data", name])
    });
    let tcp_detail = detail(&daemon, &tcp);
    let intervals = tcp_detail["entry"]["intervals"].as_array().unwrap().len();
    assert!(intervals >= 3, "{intervals} intervals");

    // The latest table links to the test; the link opens its detail.
    let mut page = Browser::open(&format!("http://{}/", daemon.http)).await;
    let href = "document.querySelector('#latest a.detail-link')?.getAttribute('href') ?? null";
    page.eventually(href, json!(format!("#/test/{tcp}"))).await;
    page.eval("document.querySelector('#latest a.detail-link').click(); true")
        .await;
    wait_detail(&mut page, &tcp).await;
    assert_eq!(
        page.eval("document.getElementById('view-home').hidden")
            .await,
        json!(true)
    );

    // The name as text, the chart drawn, one row per interval.
    assert_eq!(
        page.eval("document.getElementById('detail-name').textContent")
            .await,
        json!(name)
    );
    assert_eq!(count(&mut page, "#detail i").await, 0);
    let inked = page.eval(INKED).await.as_u64().unwrap();
    assert!(inked > 500, "the chart has ink: {inked} pixels");
    assert_eq!(
        count(&mut page, "#detail-intervals tbody tr").await,
        intervals as u64
    );
    assert_eq!(
        count(&mut page, "#detail-intervals tbody th[scope=row]").await,
        intervals as u64
    );
    // The server sent (-R): its retransmits and the streams' RTT are shown,
    // and each of the two streams has a table.
    let heads = texts(&mut page, "#detail-intervals thead th").await;
    for want in [
        "Interval",
        "Download",
        "Retransmits (download)",
        "RTT",
        "cwnd",
    ] {
        assert!(heads.iter().any(|h| h == want), "{want} in {heads:?}");
    }
    assert_eq!(count(&mut page, "#detail details.streams table").await, 2);
    // The verdict and the client's own figures are there.
    assert!(page
        .eval("document.querySelector('#detail .verdict') !== null")
        .await
        .as_bool()
        .unwrap());
    let text = page
        .eval("document.getElementById('detail').textContent")
        .await;
    let text = text.as_str().unwrap();
    assert!(text.contains("The client’s own figures"), "{text}");

    // A UDP test: loss and jitter per interval.
    let udp = tokio::task::block_in_place(|| {
        run_test(
            &daemon,
            &["-u", "-b", "20M", "-t", "2", "--extra-data", "erin-udp"],
        )
    });
    let udp_intervals = detail(&daemon, &udp)["entry"]["intervals"]
        .as_array()
        .unwrap()
        .len();
    page.navigate(&format!("http://{}/#/test/{udp}", daemon.http))
        .await;
    wait_detail(&mut page, &udp).await;
    let heads = texts(&mut page, "#detail-intervals thead th").await;
    for want in ["Upload", "Loss (upload)", "Jitter (upload)"] {
        assert!(heads.iter().any(|h| h == want), "{want} in {heads:?}");
    }
    assert_eq!(
        count(&mut page, "#detail-intervals tbody tr").await,
        udp_intervals as u64
    );

    // An unknown id says so.
    page.eval("location.hash = '#/test/5201-0-999999'; true")
        .await;
    page.eventually(
        "document.getElementById('detail').dataset.state",
        json!("missing"),
    )
    .await;
    assert_eq!(page.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_history_renders_quickly_without_errors() {
    // The debug binary loads 100,000 tests in about half a minute; the
    // million is the ignored test below (or WEBPERF3_PAGE_TESTS=N).
    let tests = std::env::var("WEBPERF3_PAGE_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    big_history(tests).await;
}

/// A million tests, run by the test command with the release binary:
/// `cargo build --release && WEBPERF3_BIN=target/release/webperf3 cargo test
/// --test dashboard million -- --ignored` (without `WEBPERF3_BIN` the debug
/// binary takes about 7 minutes to load them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads a million tests: run with the release binary (see above)"]
async fn a_million_tests_render_quickly_without_errors() {
    big_history(1_000_000).await;
}

/// Logs `tests` generated tests, starts the binary on them and checks the
/// page: first paint within 5 s of opening it, a page of the table and a
/// bounded chart, older pages on demand, part of a name typed (kept in
/// the address; each kind of test its own series), and no script error.
async fn big_history(tests: usize) {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    tokio::task::block_in_place(|| write_history(&dir.path().join("port-5201.json"), tests));
    let written = began.elapsed();
    let daemon = tokio::task::block_in_place(|| {
        let launch = Launch::new(dir.path()).start_deadline(Duration::from_secs(600));
        match std::env::var_os("WEBPERF3_BIN") {
            Some(bin) => launch.binary(Path::new(&bin)),
            None => launch,
        }
        .start()
    });
    eprintln!(
        "{tests} tests written in {written:?}, loaded in {:?}",
        began.elapsed() - written
    );

    let mut page = Browser::open(&format!("http://{}/", daemon.http)).await;
    // First paint: the newest page of the history and the chart.
    let painted = "(() => {
      const rows = document.querySelectorAll('#history tbody tr[data-port]').length;
      const drawn = document.getElementById('chart').dataset.drawn;
      return rows > 0 && drawn === 'yes' ? performance.now() : null; })()";
    let deadline = Instant::now() + Duration::from_secs(60);
    let paint_ms = loop {
        let v = page.eval(painted).await;
        if let Some(ms) = v.as_f64() {
            break ms;
        }
        assert!(
            Instant::now() < deadline,
            "no first paint: {:?}",
            page.errors().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("first paint of {tests} tests: {paint_ms:.0} ms");
    assert!(paint_ms < 5000.0, "first paint took {paint_ms:.0} ms");
    let rows = count(&mut page, "#history tbody tr[data-port]").await;
    assert!(rows <= 25, "a page of the history, not all of it: {rows}");
    let points = page
        .eval("Number(document.getElementById('chart').dataset.points)")
        .await
        .as_u64()
        .unwrap();
    assert!(
        points > 0 && points <= 6 * 240,
        "a bounded number of points drawn: {points}"
    );

    // Older pages come on demand, a page at a time (the page stays short).
    let newest =
        "document.querySelector('#history tbody a.detail-link')?.getAttribute('href') ?? null";
    let first = page.eval(newest).await;
    page.eval("document.getElementById('older').click(); true")
        .await;
    page.eventually(
        &format!("!document.getElementById('newer').hidden && ({newest}) !== {first}"),
        json!(true),
    )
    .await;
    let older_rows = count(&mut page, "#history tbody tr[data-port]").await;
    assert_eq!(older_rows, rows, "an older page as long as the first");
    page.eval("document.getElementById('newer').click(); true")
        .await;
    page.eventually(newest, first).await;

    // Typing part of a name filters as you type; the address keeps it, so
    // a reload (or a shared link) shows the same tests. Each kind of test
    // is its own series.
    let who = name_of(7);
    let typed = Instant::now();
    page.eval(&format!(
        "const box = document.getElementById('name-filter'); box.value = {who:?};
         box.dispatchEvent(new Event('input', {{bubbles: true}})); true"
    ))
    .await;
    // Drawn: the chart titled with the name, every row of the table its.
    let legend = format!(
        "(() => {{ const title = document.getElementById('chart-title').textContent;
          const names = [...document.querySelectorAll('#history tbody td.name')].map(t => t.textContent);
          if (title.includes('loading') || !title.includes({who:?}) || names.length === 0
              || names.some(n => n !== {who:?})) return null;
          return [...document.querySelectorAll('#chart-legend .key')].map(k => k.textContent); }})()"
    );
    let legend = legend.as_str();
    let kinds = json!([
        "Download · TCP",
        "Upload · TCP",
        "Download · UDP paced",
        "Upload · UDP paced"
    ]);
    page.eventually(legend, kinds.clone()).await;
    eprintln!(
        "filter of {tests} tests typed to drawn: {} ms",
        typed.elapsed().as_millis()
    );
    let mut names = texts(&mut page, "#history tbody td.name").await;
    names.dedup();
    assert_eq!(names, std::slice::from_ref(&who));
    let hash = page.eval("location.hash").await;
    assert_eq!(hash, json!(format!("#/?name={who}")));
    page.navigate(&format!("http://{}/#/?name={who}", daemon.http))
        .await;
    page.eventually(legend, kinds).await;
    assert_eq!(
        page.eval("document.getElementById('name-filter').value")
            .await,
        json!(who)
    );
    let mut names = texts(&mut page, "#history tbody td.name").await;
    names.dedup();
    assert_eq!(names, [who]);

    // Pointing at the chart shows the values there.
    page.eval(
        "const c = document.getElementById('chart'); const r = c.getBoundingClientRect();
         c.dispatchEvent(new PointerEvent('pointermove',
           {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true})); true",
    )
    .await;
    page.eventually(
        "(t => Boolean(t && !t.hidden && t.textContent.includes('TCP')))(document.querySelector('.chart .tip'))",
        json!(true),
    )
    .await;

    // A date range: from the day after tomorrow on there is nothing.
    page.eval(
        "const from = document.getElementById('f-since');
         from.value = new Date(Date.now() + 2 * 86400e3).toISOString().slice(0, 10);
         from.dispatchEvent(new Event('change', {bubbles: true})); true",
    )
    .await;
    page.eventually(
        "!document.getElementById('chart-title').textContent.includes('loading') && \
         document.getElementById('chart').dataset.drawn === 'empty' && \
         document.querySelectorAll('#history tbody tr[data-port]').length",
        json!(0),
    )
    .await;
    assert_eq!(page.errors().await, Vec::<String>::new());
}

/// Writes screenshots of a TCP `-R -P 4` test and a UDP test in detail,
/// desktop (1280 px) and phone (390 px), to /work/shots/ for a person to
/// look at: `cargo test --test dashboard detail_screenshots -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots to /work/shots for manual review"]
async fn detail_screenshots() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let shots = Path::new("/work/shots");
    std::fs::create_dir_all(shots).unwrap();
    tokio::task::block_in_place(|| {
        let tcp = run_test(
            &daemon,
            &[
                "-t",
                "5",
                "-R",
                "-P",
                "4",
                "-T",
                "living room",
                "--extra-data",
                "dana-desktop",
            ],
        );
        let udp = run_test(
            &daemon,
            &["-u", "-b", "50M", "-t", "5", "--extra-data", "erin-phone"],
        );
        for (what, id) in [("tcp-R-P4", &tcp), ("udp", &udp)] {
            let url = format!("http://{}/#/test/{id}", daemon.http);
            screenshot(&url, &shots.join(format!("{what}-desktop.png")), 1280, 2000);
            screenshot(&url, &shots.join(format!("{what}-phone.png")), 390, 2600);
        }
        let home = format!("http://{}/", daemon.http);
        screenshot(&home, &shots.join("home-desktop.png"), 1280, 1400);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_in_detail_is_the_box_sending_to_its_target() {
    let stock = iperf3::StockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Launch::new(dir.path())
        .args(["--probe-allow", "127.0.0.1"])
        .start();
    let path = format!("/probe?target=127.0.0.1:{}&duration=1", stock.port);
    let (status, body) = tokio::task::block_in_place(|| daemon.get(&path));
    assert_eq!(status, 200, "{body}");
    let (_, body) = daemon.get("/api/results");
    let results: Vec<Value> = serde_json::from_str(&body).unwrap();
    let probe = results.iter().find(|r| r["kind"] == "probe").expect(&body);
    let id = probe["id"].as_str().unwrap().to_string();
    let mut page = Browser::open(&format!("http://{}/#/test/{id}", daemon.http)).await;
    wait_detail(&mut page, &id).await;
    // The probe's entry is the client's view: what the box sent is the
    // upload, as its result says, not the download of a served test.
    let heads = texts(&mut page, "#detail-intervals thead th").await;
    assert!(heads.iter().any(|h| h == "Upload"), "{heads:?}");
    assert!(!heads.iter().any(|h| h == "Download"), "{heads:?}");
    assert_eq!(page.errors().await, Vec::<String>::new());

    // Its row in the history: no port 0, the box and its target.
    let mut page = Browser::open(&format!("http://{}/", daemon.http)).await;
    let target = format!("this box → 127.0.0.1:{}", stock.port);
    page.eventually(
        &format!(
            "(() => {{ const m = [...document.querySelectorAll('#history tbody td.test .meta')] \
             .map(m => m.textContent).find(t => t.includes('{target}')); \
             return m === undefined ? null : !/port 0/.test(m); }})()"
        ),
        json!(true),
    )
    .await;
    assert_eq!(page.errors().await, Vec::<String>::new());
}
