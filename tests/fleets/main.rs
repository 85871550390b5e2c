//! Integration tests of what plugs a box into a fleet, with the real
//! components: a real Prometheus (and promtool) scraping the `webperf3`
//! binary while stock `iperf3` clients run tests, the configurations and
//! alert rules in `dist/`, the Grafana dashboard's queries, and forwarding
//! to a receiver that fails, goes away and comes back across restarts.
//! Support code shared with the other targets is in `tests/support`.

mod forward;
mod prometheus;
#[path = "../support/mod.rs"]
mod support;
