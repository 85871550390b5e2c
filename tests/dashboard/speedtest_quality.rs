//! The speed-test screen against the quality bar, on the real binary:
//! Lighthouse at mobile and desktop settings and axe-core in light and dark
//! on `/#/speedtest` ([`crate::quality::assert_quality`]), and axe-core
//! again while a run is under way and once it is done.

use std::time::Duration;

use serde_json::json;

use crate::quality::{assert_quality, axe_now, page_in};
use crate::support::daemon::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speed_test_screen_meets_the_quality_bar() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let url = format!("http://{}/#/speedtest", daemon.http);
    assert_quality(
        "speed test",
        &url,
        "!!document.getElementById('st-start') && !document.getElementById('view-speedtest').hidden",
    )
    .await;

    for scheme in ["light", "dark"] {
        let mut page = page_in(scheme).await;
        page.navigate(&format!("{url}?autostart=1")).await;
        page.eventually(
            "document.getElementById('speedtest')?.dataset.state ?? null",
            json!("running"),
        )
        .await;
        assert_eq!(
            axe_now(&mut page).await,
            Vec::<String>::new(),
            "{scheme}, running"
        );
        page.eventually_within(
            "document.getElementById('speedtest').dataset.state",
            json!("done"),
            Duration::from_secs(120),
        )
        .await;
        page.eval("document.querySelector('.st-details').open = true")
            .await;
        assert_eq!(
            axe_now(&mut page).await,
            Vec::<String>::new(),
            "{scheme}, done"
        );
    }
}
