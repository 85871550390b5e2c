#!/usr/bin/env bash
# Installs what the tests need (Debian packages, the Pi's Rust target) and
# runs every check: formatting, clippy, the unit and integration tests (real
# stock iperf3 clients, HTTP, websocket, headless Chromium, authentication
# with keys made by the openssl command, a real Prometheus and promtool from
# the Debian prometheus package), and the static aarch64 binary under
# qemu against the stock client. Building needs a C compiler (gcc) for AWS-LC;
# the aarch64 build compiles it with zig cc (PyPI ziglang, installed into the
# venv target/ziglang when no zig is found; see docs/auth.md).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_pkgs=()
for pair in iperf3:iperf3 chromium:chromium qemu-aarch64-static:qemu-user-static \
            prometheus:prometheus promtool:prometheus \
            file:file curl:curl python3:python3 cc:gcc openssl:openssl; do
    cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# M-Lab's ndt7 clients for the ndt7 tests: the Rust command-line client and
# the JavaScript library (run in headless Chromium from target/ndt7-js).
if ! command -v ndt7-client >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/ndt7-client" ]; then
    echo "== installing ndt7-client (cargo install)"
    cargo install --quiet ndt7-client
fi
if [ ! -f target/ndt7-js/node_modules/@m-lab/ndt7/src/ndt7.js ]; then
    command -v npm >/dev/null 2>&1 || {
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    }
    echo "== installing @m-lab/ndt7 (npm) into target/ndt7-js"
    mkdir -p target/ndt7-js
    npm install --silent --no-audit --no-fund --prefix target/ndt7-js @m-lab/ndt7
fi
# Lighthouse and axe-core for the page-quality test (tests/dashboard/quality.rs),
# run with Debian's Chromium from target/lh.
if [ ! -f target/lh/node_modules/lighthouse/cli/index.js ] ||
    [ ! -f target/lh/node_modules/axe-core/axe.min.js ]; then
    command -v npm >/dev/null 2>&1 || {
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    }
    echo "== installing lighthouse and axe-core (npm) into target/lh"
    mkdir -p target/lh
    npm install --silent --no-audit --no-fund --prefix target/lh lighthouse axe-core
fi
rustup target add aarch64-unknown-linux-musl >/dev/null

echo "== documentation links"
scripts/check-links.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test
# The build without authentication (no C code), as docs/auth.md and
# docs/raspberry-pi.md describe it: built, and its unit tests run.
echo "== without default features: build and unit tests"
cargo build --no-default-features --quiet
cargo test --no-default-features --lib --quiet
echo "== a million logged tests on the page, with the release binary"
cargo build --release --quiet --bin webperf3
WEBPERF3_BIN=target/release/webperf3 cargo test --test dashboard million -- --ignored
# zig cc compiles AWS-LC for the aarch64 build (scripts/zig-cc finds it).
if [ -z "${ZIG:-}" ] && ! command -v zig >/dev/null 2>&1 &&
    ! python3 -c 'import ziglang' >/dev/null 2>&1 &&
    ! target/ziglang/bin/python -c 'import ziglang' >/dev/null 2>&1; then
    echo "== installing zig (PyPI ziglang) into target/ziglang"
    rm -rf target/ziglang
    if ! python3 -m venv target/ziglang >/dev/null 2>&1; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        rm -rf target/ziglang
        python3 -m venv target/ziglang
    fi
    target/ziglang/bin/pip install -q ziglang
fi
echo "== the static aarch64 binary under qemu, against the stock client"
scripts/pi-smoke.sh
