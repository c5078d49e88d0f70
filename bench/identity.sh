#!/usr/bin/env bash
# Sluice identity benchmark.
#
#   bash bench/identity.sh        # a few minutes after the build
#
# In one run:
#   (a) resolution with persistence through the consumer: EVENTS events of PEOPLE people
#       (default 1,000,000 of 200,000) appended to a log, then read back and ingested into the
#       profile store on one thread (`loadgen identity-fill`; target ≥ 100,000 events/s);
#   (b) the same identifier sets with the rules off, resolved in memory by Sluice and as
#       connected components by networkx (PyPI) — the ratio is the figure;
#   (c) Profile API latency with BIG_PEOPLE (default 1,000,000) profiles: a second data
#       directory filled the same way, served by `sluice serve`, read by `loadgen profile-get`
#       with 4 keep-alive connections for 10 s (target p99 < 5 ms), once the node has caught
#       up and a 10 s warm-up has loaded the profile store.
# Settings (environment): EVENTS, PEOPLE, BIG_EVENTS, BIG_PEOPLE, SLUICE_PORT, BENCH_TMP.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${EVENTS:-1000000}
PEOPLE=${PEOPLE:-200000}
BIG_EVENTS=${BIG_EVENTS:-2000000}
BIG_PEOPLE=${BIG_PEOPLE:-1000000}
SLUICE_PORT=${SLUICE_PORT:-18288}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_TMP=${BENCH_TMP:-$TARGET_DIR}

python3 -c 'import networkx' 2>/dev/null || python3 -m pip install --quiet networkx >&2
echo "== building (release)" >&2
cargo build --release -p sluice -p sluice-loadgen >&2
SLUICE="$TARGET_DIR/release/sluice"
LOADGEN="$TARGET_DIR/release/loadgen"
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/sluice-identity-bench.XXXXXX")
SERVER=""
cleanup() {
    if [[ -n $SERVER ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== (a, b) $EVENTS events of $PEOPLE people" >&2
A=$("$LOADGEN" identity-fill --data-dir "$WORK/a" --events "$EVENTS" --people "$PEOPLE" --edges "$WORK/edges.txt")
echo "   $A" >&2
NX=$(python3 bench/identity_networkx.py "$WORK/edges.txt")
echo "   networkx: $NX" >&2
rm -rf "$WORK/a" "$WORK/edges.txt"

echo "== (c) $BIG_EVENTS events of $BIG_PEOPLE people, then the Profile API" >&2
C=$("$LOADGEN" identity-fill --data-dir "$WORK/c" --events "$BIG_EVENTS" --people "$BIG_PEOPLE")
echo "   $C" >&2
SPACE=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["space"])' "$C")
TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$C")
RUST_LOG=warn "$SLUICE" serve --data-dir "$WORK/c" --listen "127.0.0.1:$SLUICE_PORT" >"$WORK/sluice.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$SLUICE_PORT/health" && break
    sleep 0.1
done
# The node first catches up: its other consumers (inventory, audiences) read the log
# identity-fill wrote, then it goes idle and gives its memory back. Then the warm-up loads the
# profile store (a few seconds for a million profiles) and the measured reads start.
python3 - "$SLUICE_PORT" <<'PY' >&2
import re, sys, time, urllib.request
url, started = f"http://127.0.0.1:{sys.argv[1]}/metrics", time.monotonic()
while time.monotonic() - started < 600:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    found = re.search(r"^sluice_idle_releases_total (\S+)$", text, re.M)
    if found and float(found.group(1)) >= 1:
        break
    time.sleep(0.5)
print(f"   node idle {time.monotonic() - started:.0f} s after start")
PY
"$LOADGEN" profile-get --url "http://127.0.0.1:$SLUICE_PORT" --space "$SPACE" --token "$TOKEN" \
    --people "$BIG_PEOPLE" --connections 4 --duration 10 >/dev/null
G=$("$LOADGEN" profile-get --url "http://127.0.0.1:$SLUICE_PORT" --space "$SPACE" --token "$TOKEN" \
    --people "$BIG_PEOPLE" --connections 4 --duration 10)
echo "   $G" >&2

python3 - "$A" "$NX" "$C" "$G" "$(nproc)" <<'PY'
import json, sys
a, nx, c, g = (json.loads(x) for x in sys.argv[1:5])
cores = sys.argv[5]
print(f"One machine, {cores} cores; the consumer runs on one thread.\n")
print("| measure | Sluice | baseline | ratio |")
print("|---|---:|---:|---:|")
print(f"| (a) resolution + persistence through the consumer, {a['events']:,} events of {a['people']:,} people | "
      f"{a['consumer_events_per_s']:,.0f} events/s ({a['profiles']:,} profiles, {a['merges']:,} merges) | – | – |")
ours = a["memory_rules_off_secs"]
print(f"| (b) same identifier graph, rules off: seconds to resolve | {ours:.2f} s "
      f"({a['components_rules_off']:,} profiles) | networkx {nx['networkx']}: {nx['seconds']:.2f} s "
      f"({nx['components']:,} components) | {nx['seconds'] / ours:.1f}x faster |")
print(f"| (c) Profile API `…/traits`, {c['profiles']:,} profiles, 4 connections | p50 {g['p50_ms']:.2f} ms, "
      f"p99 {g['p99_ms']:.2f} ms ({g['requests_per_s']:,.0f} req/s, {g['errors']} errors) | – | – |")
print()
print("| target | measured | result |")
print("|---|---:|---|")
checks = [
    ("≥ 100,000 events/s resolved and persisted on one core", f"{a['consumer_events_per_s']:,.0f} events/s", a["consumer_events_per_s"] >= 100_000),
    ("rules off: same components as networkx", f"{a['components_rules_off']:,} vs {nx['components']:,}", a["components_rules_off"] == nx["components"]),
    ("Profile API p99 < 5 ms with 1M profiles", f"{g['p99_ms']:.2f} ms", g["p99_ms"] < 5),
]
for name, value, ok in checks:
    print(f"| {name} | {value} | {'PASS' if ok else 'FAIL'} |")
PY
