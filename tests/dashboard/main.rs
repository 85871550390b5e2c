//! Dashboard tests: the HTTP routes and websocket in-process, the real
//! binary with stock iperf3 clients, and the page in headless Chromium.
//! One test target made of modules; each test has its own temp dir and
//! ephemeral ports.

mod browser;
mod chromium;
mod common;
mod compressed;
mod e2e;
mod headline;
mod heavy;
mod history;
mod history_gen;
mod hostile;
mod https;
mod index;
mod page;
mod paging;
mod probe;
mod quality;
mod routes;
mod security;
mod shaped;
mod speedtest;
mod speedtest_page;
mod speedtest_quality;
#[path = "../support/mod.rs"]
mod support;
mod views;
mod ws;
