//! Dashboard tests: the HTTP routes and websocket in-process, the real
//! binary with stock iperf3 clients, and the page in headless Chromium.
//! One test target made of modules; each test has its own temp dir and
//! ephemeral ports.

mod browser;
mod chromium;
mod common;
mod e2e;
mod headline;
mod heavy;
mod history;
mod history_gen;
mod hostile;
mod index;
mod page;
mod paging;
mod probe;
mod quality;
mod routes;
mod security;
mod speedtest;
#[path = "../support/mod.rs"]
mod support;
mod views;
mod ws;
