//! `--probe-every`: the box probes its targets on its own schedule, each
//! run recorded as a `/probe` one is. When each run is due, and whether a
//! busy target is tried again, is [`crate::protocol::probe_schedule`]'s
//! to say; here are the waits and the runs. A scheduled probe shares the
//! one probe slot with `GET /probe`, waiting for it rather than failing.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::probe::{record, run_with_retries, Probes};
use crate::hub::Hub;
use crate::protocol::client::Failure;
use crate::protocol::probe_schedule::Schedule;
use crate::shutdown::Shutdown;

/// Runs every `--probe-every` schedule of `probes` until `shutdown`.
pub async fn run_all(probes: Arc<Probes>, hub: Arc<Hub>, shutdown: Shutdown) {
    let (schedules, _) = probes.schedules();
    let runs = (0..schedules.len()).map(|i| {
        let (probes, hub, shutdown) = (Arc::clone(&probes), Arc::clone(&hub), shutdown.clone());
        async move { run(&probes, i, &hub, &shutdown).await }
    });
    futures_util::future::join_all(runs).await;
}

/// Runs schedule `i` of `probes`: a probe at each turn, a busy target
/// tried again as the schedule says.
async fn run(probes: &Probes, i: usize, hub: &Arc<Hub>, shutdown: &Shutdown) {
    let (schedules, box_name) = probes.schedules();
    let schedule: &Schedule = &schedules[i];
    let mut due = schedule.first(Instant::now(), box_name);
    info!(spec = %schedule.spec, first_in = ?due - Instant::now(), "probe schedule");
    loop {
        if !wait_until(due, shutdown).await {
            return;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let busy = turn(probes, schedule, hub).await;
            let again = busy.then(|| schedule.retry_busy(tries, due, Instant::now()));
            match again.flatten() {
                Some(at) => {
                    info!(spec = %schedule.spec, tries, "probe target busy, trying again");
                    if !wait_until(at, shutdown).await {
                        return;
                    }
                }
                None => break,
            }
        }
        due = schedule.next(due, Instant::now());
    }
}

/// Sleeps until `at`; false if `shutdown` came first.
async fn wait_until(at: Instant, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at.into()) => true,
        () = shutdown.triggered() => false,
    }
}

/// One run of `schedule`: resolved, checked against `--probe-allow`, run
/// in the probe slot and recorded. Whether the target was busy.
async fn turn(probes: &Probes, schedule: &Schedule, hub: &Arc<Hub>) -> bool {
    let request = &schedule.request;
    let addr = match probes.resolve(request).await {
        Ok(addr) => addr,
        Err((_, why)) => {
            warn!(spec = %schedule.spec, reason = %why, "scheduled probe not run");
            return false;
        }
    };
    let Some(_slot) = probes.slot().await else {
        return false;
    };
    let begun = Instant::now();
    // No retry within the run: the schedule says when to try again.
    let outcome = run_with_retries(probes, addr, &request.target.host, request, begun).await;
    let busy = outcome.failure.as_ref().is_some_and(Failure::is_busy);
    record(
        hub,
        &request.target,
        &outcome,
        begun.elapsed().as_secs_f64(),
    )
    .await;
    busy
}
