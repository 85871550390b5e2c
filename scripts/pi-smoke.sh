#!/usr/bin/env bash
# Smoke test of the Raspberry Pi build, on an x86_64 machine:
#
#   scripts/pi-smoke.sh [PATH-TO-AARCH64-BINARY]
#
# Builds the aarch64 musl release binary (or takes the one given), checks it is
# a static ARM aarch64 executable, runs it under qemu user-mode emulation on
# loopback with random free ports, and points the stock x86_64 iperf3 client at
# it: a normal test, a reverse (-R) test and a UDP test (-u -b 10M). Then checks the per-port log and /api/results, prints the
# idle memory use of the emulated server, stops it with SIGTERM and expects a
# clean exit 0.
#
# It installs nothing. Needs: qemu-aarch64-static (apt: qemu-user-static),
# iperf3, file, curl, python3, and, to build, cargo with the
# aarch64-unknown-linux-musl target (rustup target add aarch64-unknown-linux-musl).
#
# Environment:
#   PI_SMOKE_UDP=0        skip the UDP test (default: 1, run it)
#   PI_SMOKE_KEEP=1       keep the temporary directory (logs, client output)
#   PI_SMOKE_SECONDS=N    length of each client test (default: 2)
#
# Everything happens on 127.0.0.1; nothing is sent anywhere else.

set -euo pipefail

readonly TARGET=aarch64-unknown-linux-musl
readonly NAME=pi-smoke
readonly SECONDS_PER_TEST=${PI_SMOKE_SECONDS:-2}
readonly UDP=${PI_SMOKE_UDP:-1}

# Deadlines, in seconds. Emulation is slow, so these are generous; the loops
# below return as soon as the condition holds.
readonly START_DEADLINE=60
readonly RESULT_DEADLINE=30
readonly STOP_DEADLINE=30
readonly CLIENT_TIMEOUT=$((SECONDS_PER_TEST + 60))

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT

WORK=""
SERVER_PID=""
STATUS="FAIL"
FAIL_REASON="did not finish"

say() { printf 'pi-smoke: %s\n' "$*"; }

fail() {
    FAIL_REASON=$*
    say "error: $*" >&2
    exit 1
}

cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $STATUS != PASS && -n $WORK && -s $WORK/server.log ]]; then
        say "server output:" >&2
        sed 's/^/  | /' "$WORK/server.log" >&2
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${PI_SMOKE_KEEP:-0} == 1 ]]; then
            say "kept $WORK"
        else
            rm -rf -- "$WORK"
        fi
    fi
    if [[ $STATUS == PASS && $rc -eq 0 ]]; then
        echo "PASS: pi-smoke: aarch64 static binary under qemu served stock iperf3 clients"
    else
        echo "FAIL: pi-smoke: $FAIL_REASON"
        [[ $rc -ne 0 ]] || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'FAIL_REASON="interrupted"; exit 130' INT TERM

# --- tools -------------------------------------------------------------------

need() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null 2>&1 ||
        fail "$tool not found; install it with: sudo apt-get install $package"
}
need qemu-aarch64-static qemu-user-static
need iperf3 iperf3
need file file
need curl curl
need python3 python3

# --- the binary --------------------------------------------------------------

if [[ $# -gt 1 ]]; then
    fail "usage: $0 [PATH-TO-AARCH64-BINARY]"
fi
if [[ $# -eq 1 ]]; then
    BIN=$1
    [[ -f $BIN ]] || fail "no such file: $BIN"
else
    need cargo "cargo (via rustup)"
    say "building the $TARGET release binary"
    (cd "$REPO_ROOT" && cargo build --release --locked --target "$TARGET") ||
        fail "cargo build --release --target $TARGET failed (is the target installed? rustup target add $TARGET)"
    BIN=$REPO_ROOT/target/$TARGET/release/webperf3
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
readonly BIN

FILE_INFO=$(file -b "$BIN")
say "file: $FILE_INFO"
[[ $FILE_INFO == *"ARM aarch64"* ]] || fail "$BIN is not an ARM aarch64 executable"
# "static-pie linked" is just as static (no interpreter, no shared libraries).
[[ $FILE_INFO == *"statically linked"* || $FILE_INFO == *"static-pie linked"* ]] ||
    fail "$BIN is not statically linked"
say "size: $(stat -c %s "$BIN") bytes"

qemu-aarch64-static "$BIN" --version >/dev/null || fail "$BIN --version failed under qemu"
qemu-aarch64-static "$BIN" --help >/dev/null || fail "$BIN --help failed under qemu"
say "version: $(qemu-aarch64-static "$BIN" --version)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pi-smoke.XXXXXX")
readonly WORK
mkdir "$WORK/logs"

# --- helpers -----------------------------------------------------------------

# Prints three loopback TCP ports that are free right now: P and P+1 for the
# two iperf3 servers, then H for the dashboard.
free_ports() {
    python3 - <<'EOF'
import random, socket

def free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

rng = random.SystemRandom()
while True:
    p = rng.randrange(20000, 60000)
    h = rng.randrange(20000, 60000)
    if h in (p, p + 1):
        continue
    if free(p) and free(p + 1) and free(h):
        print(p, p + 1, h)
        break
EOF
}

now() { date +%s; }

# The server's state ("R", "S", "Z", ...), or nothing once it is gone.
server_state() {
    local stat
    stat=$(cat "/proc/$SERVER_PID/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    echo "${stat%% *}"
}

server_alive() {
    local state
    state=$(server_state)
    [[ -n $state && $state != Z && $state != X ]]
}

api() { curl -fsS --max-time 5 "http://127.0.0.1:$HTTP_PORT$1"; }

# Resident memory of the emulated server (qemu and the program together), kB.
vm_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }

# Number of test objects in a log file: each starts with "{" at the start of a
# line; the "{}" markers of a clear do not count.
log_entries() {
    local log=$1
    [[ -f $log ]] || { echo 0; return; }
    grep -c '^{$' "$log" || true
}

# --- start the server --------------------------------------------------------

start_server() {
    read -r PORT PORT2 HTTP_PORT < <(free_ports)
    say "starting under qemu: iperf3 ports $PORT-$PORT2, dashboard 127.0.0.1:$HTTP_PORT"
    qemu-aarch64-static "$BIN" --port "$PORT" --servers 2 --bind 127.0.0.1 \
        --http "127.0.0.1:$HTTP_PORT" --log-dir "$WORK/logs" \
        >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$(($(now) + START_DEADLINE))
    while :; do
        if api /api/status >"$WORK/status.json" 2>/dev/null; then
            return 0
        fi
        if ! server_alive; then
            local rc=0
            wait "$SERVER_PID" || rc=$?
            SERVER_PID=""
            # Someone may have taken a port between the check and the bind.
            if grep -qi 'in use' "$WORK/server.log"; then
                return 1
            fi
            fail "the server exited with status $rc before answering /api/status"
        fi
        (($(now) < deadline)) || fail "no answer from /api/status within ${START_DEADLINE}s"
        sleep 0.2
    done
}

started=0
for _ in 1 2 3; do
    if start_server; then
        started=1
        break
    fi
    say "a port was taken meanwhile; trying other ports"
done
((started)) || fail "could not start the server on free ports"

python3 - "$WORK/status.json" "$PORT" "$PORT2" <<'EOF' || fail "/api/status does not list ports $PORT and $PORT2 as idle"
import json, sys
status = json.load(open(sys.argv[1]))
ports = [p["port"] for p in status["ports"]]
want = [int(sys.argv[2]), int(sys.argv[3])]
assert ports == want, f"ports {ports}, expected {want}"
assert all(p["state"] == "idle" for p in status["ports"]), status
print(f"pi-smoke: /api/status: version {status['version']}, ports {ports} idle")
EOF

RSS_START_KB=$(vm_rss_kb)

# --- clients -----------------------------------------------------------------

# Runs the stock client against the emulated server; checks its exit status and
# that its JSON output reports no error.
run_client() {
    local label=$1
    shift
    local out=$WORK/client-$label.json rc=0
    say "client: iperf3 -c 127.0.0.1 -p $PORT -t $SECONDS_PER_TEST --extra-data $NAME -J $*"
    timeout "$CLIENT_TIMEOUT" iperf3 -c 127.0.0.1 -p "$PORT" -t "$SECONDS_PER_TEST" \
        --extra-data "$NAME" -J "$@" >"$out" 2>"$WORK/client-$label.err" || rc=$?
    if ((rc != 0)); then
        sed 's/^/  | /' "$out" "$WORK/client-$label.err" >&2 || true
        fail "iperf3 client ($label) exited with status $rc"
    fi
    python3 - "$out" "$label" <<'EOF' || fail "iperf3 client ($label) reported an error"
import json, sys
out = json.load(open(sys.argv[1]))
if "error" in out:
    sys.exit(f"pi-smoke: client error: {out['error']}")
end = out["end"]
summary = end.get("sum_received") or end.get("sum") or {}
bps = summary.get("bits_per_second", 0)
print(f"pi-smoke: client ({sys.argv[2]}): {bps / 1e6:.1f} Mbit/s")
EOF
}

LOG=$WORK/logs/port-$PORT.json

# Is port $PORT idle in the /api/status answer on stdin?
port_idle() {
    python3 -c '
import json, sys
port = int(sys.argv[1])
status = json.load(sys.stdin)
sys.exit(0 if any(p["port"] == port and p["state"] == "idle" for p in status["ports"]) else 1)
' "$PORT"
}

# Waits until the log holds $1 tests and the port is idle again. The client
# exits as soon as it has the results; the server still has to finish the
# test, and a client that came back at once could find the port busy (as with
# stock iperf3).
wait_test_done() {
    local want=$1 status
    local deadline=$(($(now) + RESULT_DEADLINE))
    while :; do
        if (($(log_entries "$LOG") >= want)); then
            status=$(api /api/status) || fail "GET /api/status failed"
            port_idle <<<"$status" && return 0
        fi
        (($(now) < deadline)) ||
            fail "test $want: $(basename "$LOG") holds $(log_entries "$LOG") test(s) and port $PORT is not idle after ${RESULT_DEADLINE}s"
        sleep 0.2
    done
}

EXPECTED=1
run_client tcp
wait_test_done "$EXPECTED"
EXPECTED=$((EXPECTED + 1))
run_client reverse -R
wait_test_done "$EXPECTED"
if [[ $UDP == 1 ]]; then
    EXPECTED=$((EXPECTED + 1))
    run_client udp -u -b 10M
    wait_test_done "$EXPECTED"
else
    say "UDP test skipped (PI_SMOKE_UDP=$UDP)"
fi

# --- what the server recorded ------------------------------------------------

say "log: $(basename "$LOG") holds $(log_entries "$LOG") test(s)"

python3 - "$LOG" "$NAME" "$EXPECTED" <<'EOF' || fail "$(basename "$LOG") does not hold the $EXPECTED tests as stock iperf3 would log them"
import json, sys
text = open(sys.argv[1]).read()
dec = json.JSONDecoder()
tests = []
i = 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    obj, i = dec.raw_decode(text, i)
    if obj:
        tests.append(obj)
assert len(tests) == int(sys.argv[3]), f"{len(tests)} tests logged, expected {sys.argv[3]}"
for t in tests:
    for key in ("start", "intervals", "end"):
        assert key in t, f"a logged test lacks {key!r}"
    assert "error" not in t, f"a logged test failed: {t['error']}"
    assert t.get("extra_data") == sys.argv[2], f"extra_data is {t.get('extra_data')!r}"
EOF

deadline=$(($(now) + RESULT_DEADLINE))
while :; do
    api "/api/results?port=$PORT" >"$WORK/results.json" || fail "GET /api/results failed"
    rc=0
    python3 - "$WORK/results.json" "$NAME" "$EXPECTED" "$UDP" <<'EOF' || rc=$?
import json, sys
results = [r for r in json.load(open(sys.argv[1])) if r.get("name") == sys.argv[2]]
expected, udp = int(sys.argv[3]), sys.argv[4] == "1"
if len(results) < expected:
    sys.exit(3)  # not there yet: ask again
assert len(results) == expected, f"{len(results)} results, expected {expected}: {results}"
assert all(r["client"] == "127.0.0.1" for r in results), f"client is not 127.0.0.1: {results}"
tcp = [r for r in results if r.get("protocol") == "TCP"]
forward = [r for r in tcp if not r.get("reverse")]
reverse = [r for r in tcp if r.get("reverse")]
assert forward and forward[0]["receive_bps"], f"no forward TCP result with receive_bps: {results}"
assert reverse and reverse[0]["send_bps"], f"no reverse TCP result with send_bps: {results}"
if udp:
    assert any(r.get("protocol") == "UDP" for r in results), f"no UDP result: {results}"
for r in results:
    print(f"pi-smoke: /api/results: {r['protocol']} reverse={r['reverse']} "
          f"receive_bps={r['receive_bps']} send_bps={r['send_bps']} name={r['name']}")
EOF
    ((rc == 0)) && break
    ((rc == 3)) || fail "/api/results?port=$PORT does not hold the expected results"
    (($(now) < deadline)) ||
        fail "/api/results does not list $EXPECTED test(s) named $NAME on port $PORT"
    sleep 0.2
done

# --- idle memory ------------------------------------------------------------

RSS_IDLE_KB=$(vm_rss_kb)
say "idle RSS under qemu-aarch64 (emulator included): ${RSS_START_KB} kB at start, ${RSS_IDLE_KB} kB after the tests"

# --- clean stop ----------------------------------------------------------------

say "sending SIGTERM"
kill -TERM "$SERVER_PID"
deadline=$(($(now) + STOP_DEADLINE))
while server_alive; do
    (($(now) < deadline)) || fail "the server did not exit within ${STOP_DEADLINE}s of SIGTERM"
    sleep 0.1
done
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
((rc == 0)) || fail "the server exited with status $rc after SIGTERM, expected 0"
say "server exited with status 0"

STATUS=PASS
