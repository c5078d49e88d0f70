#!/usr/bin/env bash
# Sluice ingestion benchmark: baseline HTTP server vs. Sluice, batch and single-event calls.
#
#   bash bench/run.sh            # about 2 minutes after the build
#
# Phases, in one run:
#   (0) the disk alone: 10 s of 64 KiB writes each followed by an fsync, in the directory the data
#       goes to (what a durable commit can never beat);
#   (a) the baseline (loadgen baseline: reads the body, answers 200) under batch and single load;
#   (b) Sluice on a fresh data directory under batch and single load at full speed;
#   (c) Sluice at half the request rate measured in (b), for latency (open loop, --rate);
# and Sluice's memory: VmRSS idle after start, VmHWM (peak) under load, VmRSS once the load has
# stopped and the log consumers have caught up (idle: no requests, no background work).
#
# Everything runs on this machine over 127.0.0.1; the generator and the server share its cores.
# Settings (environment): PHASE_SECS, WARMUP_SECS, BATCH_CONNECTIONS, SINGLE_CONNECTIONS,
# LOADGEN_THREADS, BASELINE_PORT, SLUICE_PORT, BENCH_TMP (where the data directory goes; must be
# a real disk for the fsyncs to mean anything), RESULTS_JSON (file to keep the raw JSON lines).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PHASE_SECS=${PHASE_SECS:-10}
WARMUP_SECS=${WARMUP_SECS:-2}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BASELINE_PORT=${BASELINE_PORT:-18089}
SLUICE_PORT=${SLUICE_PORT:-18088}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_TMP=${BENCH_TMP:-$TARGET_DIR}

if ! [[ $PHASE_SECS =~ ^[0-9]+$ ]] || ((PHASE_SECS < 1 || PHASE_SECS > 60)); then
    echo "PHASE_SECS must be 1..60" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "python3 is needed for the report" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 2; }

echo "== building (release)" >&2
cargo build --release -p sluice -p sluice-loadgen >&2
SLUICE="$TARGET_DIR/release/sluice"
LOADGEN="$TARGET_DIR/release/loadgen"

mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/sluice-bench.XXXXXX")
if [[ $(stat -f -c %T "$WORK") == tmpfs ]]; then
    echo "warning: $WORK is on tmpfs, fsync is free there: set BENCH_TMP to a disk" >&2
fi
RESULTS=$WORK/results.jsonl
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n ${RESULTS_JSON:-} && -f $RESULTS ]]; then cp "$RESULTS" "$RESULTS_JSON"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 10 s) until URL answers.
wait_ready() {
    local url=$1 pid=$2
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { echo "server $pid died" >&2; return 1; }
        sleep 0.1
    done
    echo "no answer from $url" >&2
    return 1
}

# What a Sluice process has done so far: CPU ticks per thread name (/proc) and the log
# writer's commit counters (/metrics). Prints one JSON object ({} for the baseline).
snapshot() { # snapshot PID PORT
    python3 - "$1" "$2" <<'PY'
import json, os, sys, urllib.request
pid, port = sys.argv[1], sys.argv[2]
cpu = {}
for task in os.listdir(f"/proc/{pid}/task"):
    try:
        comm = open(f"/proc/{pid}/task/{task}/comm").read().strip()
        fields = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    cpu[comm] = cpu.get(comm, 0) + int(fields[11]) + int(fields[12])
out = {"cpu_ticks": cpu, "clk_tck": os.sysconf("SC_CLK_TCK")}
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        for name in ("sluice_log_commit_seconds_sum", "sluice_log_commit_seconds_count",
                     "sluice_log_commit_events_sum"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
        if line.startswith('sluice_log_commit_seconds_bucket{le="0.025"} '):
            out["commits_within_25ms"] = float(line.split()[1])
except OSError:
    pass
print(json.dumps(out))
PY
}

# Runs one load phase; appends its JSON line, tagged, to $RESULTS and prints it to stderr.
# For Sluice ($SNAPSHOT_PID set) also the process's CPU and commit counters around it.
load() {
    local server=$1 phase=$2 port=$3 key=$4 mode=$5 connections=$6
    shift 6
    local line before="{}" after="{}"
    if [[ -n ${SNAPSHOT_PID:-} ]]; then before=$(snapshot "$SNAPSHOT_PID" "$port"); fi
    line=$("$LOADGEN" run --url "http://127.0.0.1:$port" --write-key="$key" --mode "$mode" \
        --connections "$connections" --duration "$PHASE_SECS" --warmup "$WARMUP_SECS" \
        --threads "$LOADGEN_THREADS" "$@")
    if [[ -n ${SNAPSHOT_PID:-} ]]; then after=$(snapshot "$SNAPSHOT_PID" "$port"); fi
    echo "   $server $phase: $line" >&2
    echo "{\"server\":\"$server\",\"phase\":\"$phase\",\"result\":$line,\"before\":$before,\"after\":$after}" >>"$RESULTS"
}

field() { # field FILE-LINE-JSON KEY
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["result"][sys.argv[2]])' "$1" "$2"
}

kib() { # kib PID FIELD -> the value in KiB of FIELD in /proc/PID/status
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

memory() { # memory NAME VALUE_KIB
    echo "{\"memory\":\"$1\",\"kib\":$2}" >>"$RESULTS"
    echo "   sluice $1: $(($2 / 1024)) MiB" >&2
}

idle_after() { # idle_after PORT RELEASES -> waits (at most 10 min) until the node has given its
    # caches back more than RELEASES times (it does once no request came and no consumer had work
    # for 2 s), and prints how many seconds that took
    python3 - "$1" "$2" <<'PY'
import re, sys, time, urllib.request

url, before = f"http://127.0.0.1:{sys.argv[1]}/metrics", float(sys.argv[2])
started = time.monotonic()
while time.monotonic() - started < 600:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    found = re.search(r"^sluice_idle_releases_total (\S+)$", text, re.M)
    if found and float(found.group(1)) > before:
        break
    time.sleep(0.5)
print(f"{time.monotonic() - started:.0f}")
PY
}

releases() { # releases PORT -> sluice_idle_releases_total now (0 before the first)
    curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "sluice_idle_releases_total" { print $2; found = 1 } END { if (!found) print 0 }'
}

# (0) the disk alone
echo "== (0) fsync latency of the disk under $WORK" >&2
python3 - "$WORK/fsync-probe" >>"$RESULTS" <<'PY'
import json, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
chunk, latencies = os.urandom(64 * 1024), []
end = time.monotonic() + 10
while time.monotonic() < end:
    os.write(fd, chunk)
    start = time.perf_counter()
    os.fsync(fd)
    latencies.append((time.perf_counter() - start) * 1000)
os.close(fd)
os.unlink(sys.argv[1])
latencies.sort()
n = len(latencies)
print(json.dumps({"fsync": {"count": n, "p50_ms": latencies[n // 2],
                            "p99_ms": latencies[int(n * 0.99)], "max_ms": latencies[-1],
                            "over_25ms": sum(1 for v in latencies if v > 25)}}))
PY
tail -n 1 "$RESULTS" >&2

# (a) the baseline
echo "== (a) baseline on 127.0.0.1:$BASELINE_PORT" >&2
"$LOADGEN" baseline --listen "127.0.0.1:$BASELINE_PORT" --max-seconds 300 2>/dev/null &
BASELINE_PID=$!
PIDS+=("$BASELINE_PID")
wait_ready "http://127.0.0.1:$BASELINE_PORT/" "$BASELINE_PID"
load baseline max "$BASELINE_PORT" none batch "$BATCH_CONNECTIONS"
load baseline max "$BASELINE_PORT" none single "$SINGLE_CONNECTIONS"
kill "$BASELINE_PID"
wait "$BASELINE_PID" 2>/dev/null || true

# (b) Sluice, fresh data directory, full speed
echo "== (b) sluice on 127.0.0.1:$SLUICE_PORT, data in $WORK/data" >&2
KEY=$("$SLUICE" source create bench --json --data-dir "$WORK/data" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["write_key"])')
SLUICE_ADMIN_TOKEN=bench-admin-token-not-secret-0123 RUST_LOG=warn \
    "$SLUICE" serve --data-dir "$WORK/data" --listen "127.0.0.1:$SLUICE_PORT" >"$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait_ready "http://127.0.0.1:$SLUICE_PORT/health" "$SLUICE_PID"
SNAPSHOT_PID=$SLUICE_PID
sleep 2
memory idle_after_start "$(kib "$SLUICE_PID" VmRSS)"
load sluice max "$SLUICE_PORT" "$KEY" batch "$BATCH_CONNECTIONS"
load sluice max "$SLUICE_PORT" "$KEY" single "$SINGLE_CONNECTIONS"

# (c) half the measured maximum request rate, open loop
BATCH_MAX=$(tail -n 2 "$RESULTS" | head -n 1)
SINGLE_MAX=$(tail -n 1 "$RESULTS")
BATCH_HALF=$(python3 -c "print(max(1.0, $(field "$BATCH_MAX" requests_per_s) / 2))")
SINGLE_HALF=$(python3 -c "print(max(1.0, $(field "$SINGLE_MAX" requests_per_s) / 2))")
echo "== (c) sluice at half rate: batch $BATCH_HALF req/s, single $SINGLE_HALF req/s" >&2
load sluice half "$SLUICE_PORT" "$KEY" batch "$BATCH_CONNECTIONS" --rate "$BATCH_HALF"
load sluice half "$SLUICE_PORT" "$KEY" single "$SINGLE_CONNECTIONS" --rate "$SINGLE_HALF"
memory peak_under_load "$(kib "$SLUICE_PID" VmHWM)"
# Idle means no requests and no background work: the log consumers (profiles, audiences,
# inventory) catch up on what the load left them first; the node gives its caches back after 2 s
# of quiet (crates/sluice-server/src/idle.rs), which /metrics counts.
IDLE_AFTER=$(idle_after "$SLUICE_PORT" "$(releases "$SLUICE_PORT")")
echo "   node idle $IDLE_AFTER s after the load" >&2
sleep 2
memory idle_after_load "$(kib "$SLUICE_PID" VmRSS)"
echo "{\"data_dir_bytes\":$(du -sb "$WORK/data" | cut -f1)}" >>"$RESULTS"

# The report (markdown, on stdout)
python3 - "$RESULTS" "$(nproc)" "$PHASE_SECS" "$WARMUP_SECS" "$LOADGEN_THREADS" <<'EOF'
import json, sys

path, cores, secs, warmup, threads = sys.argv[1:6]
runs, items, memory, data_bytes, fsync = {}, {}, {}, 0, None
for line in open(path):
    item = json.loads(line)
    if "result" in item:
        r = item["result"]
        runs[(item["server"], item["phase"], r["mode"])] = r
        item["wall"] = r["seconds"] + float(warmup)
        items[(item["server"], item["phase"], r["mode"])] = item
    elif "fsync" in item:
        fsync = item["fsync"]
    elif "memory" in item:
        memory[item["memory"]] = item["kib"] / 1024
    else:
        data_bytes = item["data_dir_bytes"]

def num(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"

print(f"Generator and server share this machine's {cores} cores; "
      f"{secs} s per phase after {warmup} s warm-up; loadgen runtime threads: {threads}.\n")
if fsync:
    print(f"The disk alone: {fsync['count']:,} fsyncs of 64 KiB in 10 s, p50 {fsync['p50_ms']:.2f} ms, "
          f"p99 {fsync['p99_ms']:.2f} ms, max {fsync['max_ms']:.1f} ms, {fsync['over_25ms']} over 25 ms.\n")
print("| server | phase | mode | conns | events/s | req/s | p50 ms | p99 ms | errors | sluice/baseline (req/s) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for key in [("baseline", "max", "batch"), ("baseline", "max", "single"),
            ("sluice", "max", "batch"), ("sluice", "max", "single"),
            ("sluice", "half", "batch"), ("sluice", "half", "single")]:
    r = runs.get(key)
    if r is None:
        continue
    server, phase, mode = key
    ratio = "–"
    base = runs.get(("baseline", "max", mode))
    if server == "sluice" and phase == "max" and base and base["requests_per_s"]:
        ratio = f"{r['requests_per_s'] / base['requests_per_s']:.3f}"
    label = "max" if phase == "max" else f"half ({r['rate']:,.0f} req/s)"
    print(f"| {server} | {label} | {mode} | {r['connections']} | {num(r['events_per_s'])} | "
          f"{num(r['requests_per_s'])} | {num(r['p50_ms'], 2)} | {num(r['p99_ms'], 2)} | "
          f"{r['errors']} | {ratio} |")

print()
print("Where Sluice's time went in each phase (its threads' CPU from /proc, the log writer's "
      "commits from /metrics; the phase's wall time includes the warm-up):\n")
print("| phase | mode | wall s | HTTP+parse threads (cores) | log writer CPU (cores) | "
      "commits/s | events/commit | mean commit ms | writer time in commits | "
      "commits > 25 ms | HTTP+parse µs/event | writer µs/event |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in [("sluice", "max", "batch"), ("sluice", "max", "single"),
            ("sluice", "half", "batch"), ("sluice", "half", "single")]:
    item = items.get(key)
    if not item or "cpu_ticks" not in item["before"] or "cpu_ticks" not in item["after"]:
        continue
    b, a, r = item["before"], item["after"], item["result"]
    wall = item["wall"]
    tck = a["clk_tck"]
    def cores(name):
        return (a["cpu_ticks"].get(name, 0) - b["cpu_ticks"].get(name, 0)) / tck / wall
    workers = cores("tokio-rt-worker") + cores("sluice")
    writer = cores("sluice-log-writ")
    d = lambda k: a.get(k, 0) - b.get(k, 0)
    commits = d("sluice_log_commit_seconds_count")
    events = d("sluice_log_commit_events_sum")
    busy = d("sluice_log_commit_seconds_sum")
    per_commit = events / commits if commits else 0
    mean_ms = busy / commits * 1000 if commits else 0
    ev = events or 1
    print(f"| {key[1]} | {key[2]} | {wall:.1f} | {workers:.2f} | {writer:.2f} | "
          f"{commits / wall:,.0f} | {per_commit:,.1f} | {mean_ms:.2f} | {busy / wall:.0%} | "
          f"{commits - d('commits_within_25ms'):,.0f} | "
          f"{workers * wall * 1e6 / ev:.1f} | {writer * wall * 1e6 / ev:.1f} |")

print()
print(f"Sluice memory: idle after start {memory.get('idle_after_start', 0):.1f} MiB, "
      f"peak under load (VmHWM) {memory.get('peak_under_load', 0):.1f} MiB, "
      f"idle after load {memory.get('idle_after_load', 0):.1f} MiB; "
      f"data directory after the run {data_bytes / 2**20:,.0f} MiB.\n")

def get(key, field):
    r = runs.get(key)
    return None if r is None else r[field]

checks = [
    ("≥ 100,000 events/s durable via /v1/batch", get(("sluice", "max", "batch"), "events_per_s"),
     lambda v: v >= 100_000, "{:,.0f} events/s"),
    ("≥ 15,000 single-event requests/s", get(("sluice", "max", "single"), "requests_per_s"),
     lambda v: v >= 15_000, "{:,.0f} req/s"),
    ("p99 < 25 ms at half max rate (batch)", get(("sluice", "half", "batch"), "p99_ms"),
     lambda v: v < 25, "{:.2f} ms"),
    ("p99 < 25 ms at half max rate (single)", get(("sluice", "half", "single"), "p99_ms"),
     lambda v: v < 25, "{:.2f} ms"),
    ("< 300 MB RSS under load", memory.get("peak_under_load"), lambda v: v < 300, "{:.1f} MiB"),
    ("< 50 MB RSS idle (after start)", memory.get("idle_after_start"), lambda v: v < 50, "{:.1f} MiB"),
    ("< 50 MB RSS idle (after load)", memory.get("idle_after_load"), lambda v: v < 50, "{:.1f} MiB"),
]
print("| target | measured | result |")
print("|---|---:|---|")
for name, value, ok, fmt in checks:
    if value is None:
        print(f"| {name} | – | not measured |")
    else:
        print(f"| {name} | {fmt.format(value)} | {'PASS' if ok(value) else 'FAIL'} |")
errors = sum(r["errors"] for r in runs.values())
if errors:
    print(f"\n{errors} requests failed; see the loadgen lines above for the first error.")
EOF
