#!/usr/bin/env bash
# Sluice deletion benchmark.
#
#   bash bench/privacy.sh        # a few minutes after the build
#
# A data directory with EVENTS events of PEOPLE people (default 1,000,000 of 200,000), resolved
# into profiles (`loadgen identity-fill`), served by `sluice serve`. Then, ROUNDS times (default
# 3), one person is deleted by email with SUPPRESS_WITH_DELETE through the admin API: the time
# from the request to the FINISHED status is measured from outside (target: within 60 s), with
# the regulation's own duration and rows erased per store, and `POST /api/v1/privacy/verify`
# (every store's find plus a byte scan of the data directory) must come back clean.
# Settings (environment): EVENTS, PEOPLE, ROUNDS, SLUICE_PORT, BENCH_TMP.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${EVENTS:-1000000}
PEOPLE=${PEOPLE:-200000}
ROUNDS=${ROUNDS:-3}
SLUICE_PORT=${SLUICE_PORT:-18388}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_TMP=${BENCH_TMP:-$TARGET_DIR}
TOKEN=bench-admin-token-0123456789

echo "== building (release)" >&2
cargo build --release -p sluice -p sluice-loadgen >&2
SLUICE="$TARGET_DIR/release/sluice"
LOADGEN="$TARGET_DIR/release/loadgen"
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/sluice-privacy-bench.XXXXXX")
SERVER=""
cleanup() {
    if [[ -n $SERVER ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== $EVENTS events of $PEOPLE people" >&2
FILL=$("$LOADGEN" identity-fill --data-dir "$WORK/d" --events "$EVENTS" --people "$PEOPLE")
echo "   $FILL" >&2
SLUICE_ADMIN_TOKEN=$TOKEN RUST_LOG=warn "$SLUICE" serve --data-dir "$WORK/d" \
    --listen "127.0.0.1:$SLUICE_PORT" >"$WORK/sluice.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$SLUICE_PORT/health" && break
    sleep 0.1
done
DU=$(du -sb "$WORK/d" | cut -f1)

python3 - "$SLUICE_PORT" "$TOKEN" "$ROUNDS" "$PEOPLE" "$EVENTS" "$DU" "$(nproc)" "$FILL" <<'PY'
import json, statistics, sys, time, urllib.request

port, token, rounds, people, events, du, cores, fill = sys.argv[1:9]
rounds, people, events, du = int(rounds), int(people), int(events), int(du)
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())

M64 = (1 << 64) - 1

def mix(x):
    # splitmix64, as `loadgen identity-fill` spreads events over people.
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)

# People whose email was sent (an identify call: `roll < 15` in the generator), spread
# through the log.
subjects = []
n = events // 3
while len(subjects) < rounds and n < events:
    if mix(n ^ 0x8CB92BA72F3D8DD7) % 100 < 15 and mix(n) % people not in subjects:
        subjects.append(mix(n) % people)
        n += events // 10
    else:
        n += 1

rows = []
for person in subjects:
    email = f"p{person}@example.com"
    started = time.monotonic()
    made = call("POST", "/api/v1/regulations",
                {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "EMAIL", "subjectIds": [email]})
    reg_id = made["data"]["regulateId"]
    while True:
        regulation = call("GET", f"/api/v1/regulations/{reg_id}")["data"]["regulation"]
        if regulation["overallStatus"] in ("FINISHED", "PARTIAL_SUCCESS", "FAILED"):
            break
        time.sleep(0.05)
    wall = time.monotonic() - started
    verify_started = time.monotonic()
    found = call("POST", "/api/v1/privacy/verify", {"subjectType": "EMAIL", "subjectId": email})
    verify_secs = time.monotonic() - verify_started
    report = regulation["report"]
    stores = {s["store"]: s["erased"] for s in report.get("stores", [])}
    rows.append({"wall": wall, "status": regulation["overallStatus"], "own_ms": report.get("durationMs"),
                 "identifiers": report.get("identifiers"), "stores": stores, "clean": found["clean"],
                 "verify": verify_secs})
    print(json.dumps(rows[-1]), file=sys.stderr)

print(f"One machine, {cores} cores; {events:,} events of {people:,} people "
      f"({json.loads(fill)['profiles']:,} profiles), data directory {du / 1e6:,.0f} MB.\n")
print("| round | request → FINISHED | regulation's own time | identifiers | log rows | profile rows | verify (finds + byte scan) | clean |")
print("|---:|---:|---:|---:|---:|---:|---:|---|")
for i, r in enumerate(rows, 1):
    print(f"| {i} | {r['wall']:.2f} s | {r['own_ms'] / 1000:.2f} s | {r['identifiers']} | {r['stores'].get('log')} | "
          f"{r['stores'].get('profiles')} | {r['verify']:.2f} s | {r['clean']} |")
median = statistics.median(r["wall"] for r in rows)
ok = median < 60 and all(r["status"] == "FINISHED" and r["clean"] for r in rows)
print()
print("| target | measured | result |")
print("|---|---:|---|")
print(f"| deletion finished within 60 s on 1M events, verify clean | median {median:.2f} s | {'PASS' if ok else 'FAIL'} |")
PY
