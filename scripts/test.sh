#!/usr/bin/env bash
# Installs what the tests need (Debian packages, the Pi's Rust target) and
# runs every check: formatting, clippy, the unit and integration tests (real
# stock iperf3 clients, HTTP, websocket, headless Chromium), and the static
# aarch64 binary under qemu against the stock client.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_pkgs=()
for pair in iperf3:iperf3 chromium:chromium qemu-aarch64-static:qemu-user-static \
            file:file curl:curl python3:python3; do
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
rustup target add aarch64-unknown-linux-musl >/dev/null

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test
echo "== the static aarch64 binary under qemu, against the stock client"
scripts/pi-smoke.sh
