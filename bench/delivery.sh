#!/usr/bin/env bash
# Sluice delivery benchmark: events from /v1/batch to a webhook destination on 127.0.0.1.
#
#   bash bench/delivery.sh          # about 1.5 minutes after the build
#
# Phases, in one run, against one fresh Sluice:
#   (a) throughput: batch ingestion at RATE events/s (default 60,000: 600 requests of 100
#       events a second, open loop) for PHASE_SECS while the destination (a webhook with batches
#       of 100) delivers to `loadgen sink`; delivered events/s = events / (time from the start
#       until the sink has them all), so a destination that falls behind scores lower;
#   (b) latency at 5,000 events/s (50 batch requests/s, open loop): the sink's p50/p99 of
#       (arrival time - Sluice's receivedAt);
#   (c) isolation: the same load with a second destination on the same source whose tool
#       answers 500 to everything (HANG=1: never answers); the healthy sink's p99 divided by
#       its p99 in (b) is the figure (target at most 1.2).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PHASE_SECS=${PHASE_SECS:-10}
RATE=${RATE:-60000}
SLUICE_PORT=${SLUICE_PORT:-18188}
SINK_PORT=${SINK_PORT:-18190}
BAD_SINK_PORT=${BAD_SINK_PORT:-18191}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_TMP=${BENCH_TMP:-$TARGET_DIR}
BAD_BEHAVIOUR=fail
if [[ ${HANG:-0} == 1 ]]; then BAD_BEHAVIOUR=hang; fi

echo "== building (release)" >&2
cargo build --release -p sluice -p sluice-loadgen >&2
SLUICE="$TARGET_DIR/release/sluice"
LOADGEN="$TARGET_DIR/release/loadgen"

mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/sluice-delivery-bench.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # wait_ready URL PID
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "process $2 died" >&2; return 1; }
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

stats() { curl -s --max-time 5 "http://127.0.0.1:$1/stats"; }
reset() { curl -s --max-time 5 -X POST "http://127.0.0.1:$1/reset" >/dev/null; }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

"$LOADGEN" sink --listen "127.0.0.1:$SINK_PORT" --max-seconds 600 2>/dev/null &
PIDS+=($!)
wait_ready "http://127.0.0.1:$SINK_PORT/stats" "${PIDS[-1]}"
"$LOADGEN" sink --listen "127.0.0.1:$BAD_SINK_PORT" --behaviour "$BAD_BEHAVIOUR" --max-seconds 600 2>/dev/null &
PIDS+=($!)
wait_ready "http://127.0.0.1:$BAD_SINK_PORT/stats" "${PIDS[-1]}"

DATA="$WORK/data"
export SLUICE_ADMIN_TOKEN=bench-admin-token-not-secret-0123
KEY=$("$SLUICE" source create bench --json --data-dir "$DATA" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["write_key"])')
"$SLUICE" destination create healthy --type webhook --source bench --data-dir "$DATA" \
    --setting "url=http://127.0.0.1:$SINK_PORT/hook" --setting batch_size:=100 >/dev/null
RUST_LOG=warn "$SLUICE" serve --data-dir "$DATA" --listen "127.0.0.1:$SLUICE_PORT" >"$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait_ready "http://127.0.0.1:$SLUICE_PORT/health" "$SLUICE_PID"

# Waits until the sink has N events (at most 120 s); prints the seconds it took.
drain() { # drain PORT N START_EPOCH
    while true; do
        local got
        got=$(json "$(stats "$1")" events)
        if ((got >= $2)); then
            python3 -c "import time; print(round(time.time() - $3, 3))"
            return 0
        fi
        if python3 -c "import time,sys; sys.exit(0 if time.time() - $3 > 120 else 1)"; then
            echo "timeout: the sink has $got of $2 events" >&2
            echo "nan"
            return 0
        fi
        sleep 0.05
    done
}

echo "== (a) throughput" >&2
reset "$SINK_PORT"
START=$(python3 -c 'import time; print(time.time())')
A=$("$LOADGEN" run --url "http://127.0.0.1:$SLUICE_PORT" --write-key="$KEY" --mode batch \
    --connections 8 --duration "$PHASE_SECS" --warmup 0 --rate "$((RATE / 100))")
ACCEPTED=$(json "$A" accepted)
DRAIN_SECS=$(drain "$SINK_PORT" "$ACCEPTED" "$START")
A_STATS=$(stats "$SINK_PORT")
echo "   ingest: $A" >&2
echo "   sink: $A_STATS after $DRAIN_SECS s" >&2

latency_phase() { # latency_phase NAME -> prints the sink's stats JSON
    reset "$SINK_PORT"
    local line accepted
    line=$("$LOADGEN" run --url "http://127.0.0.1:$SLUICE_PORT" --write-key="$KEY" --mode batch \
        --connections 8 --duration "$PHASE_SECS" --warmup 0 --rate 50)
    accepted=$(json "$line" accepted)
    drain "$SINK_PORT" "$accepted" "$(python3 -c 'import time; print(time.time())')" >/dev/null
    echo "   $1 ingest: $line" >&2
    stats "$SINK_PORT"
}

echo "== (b) latency at 5,000 events/s" >&2
B_STATS=$(latency_phase alone)
echo "   sink: $B_STATS" >&2

echo "== (c) the same with a failing neighbour ($BAD_BEHAVIOUR)" >&2
"$SLUICE" destination create failing --type webhook --source bench --data-dir "$DATA" \
    --setting "url=http://127.0.0.1:$BAD_SINK_PORT/hook" --setting batch_size:=100 >/dev/null 2>&1 ||
    curl -sf -X POST "http://127.0.0.1:$SLUICE_PORT/api/v1/destinations" \
        -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"failing\",\"type\":\"webhook\",\"sources\":[\"bench\"],\"settings\":{\"url\":\"http://127.0.0.1:$BAD_SINK_PORT/hook\",\"batch_size\":100}}" >/dev/null
sleep 2
C_STATS=$(latency_phase "with neighbour")
echo "   sink: $C_STATS" >&2
BAD=$(stats "$BAD_SINK_PORT")

python3 - "$A" "$A_STATS" "$DRAIN_SECS" "$B_STATS" "$C_STATS" "$BAD" "$BAD_BEHAVIOUR" "$(nproc)" <<'EOF'
import json, sys
a, a_stats, drain, b, c, bad, behaviour, cores = sys.argv[1:9]
a, a_stats, b, c, bad = (json.loads(x) for x in (a, a_stats, b, c, bad))
drain = float(drain)
delivered_rate = a_stats["events"] / drain if drain == drain and drain > 0 else 0
print(f"Sluice, the load generator and the sinks share this machine's {cores} cores.\n")
print("| phase | ingested events/s | delivered events | delivered events/s | sink p50 ms | sink p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| (a) sustained | {a['events_per_s']:,.0f} | {a_stats['events']:,} | {delivered_rate:,.0f} "
      f"(all in {drain:.1f} s) | {a_stats['p50_ms']:.1f} | {a_stats['p99_ms']:.1f} |")
print(f"| (b) 5,000 events/s | 5,000 | {b['events']:,} | – | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} |")
print(f"| (c) 5,000 events/s, neighbour {behaviour} | 5,000 | {c['events']:,} | – | "
      f"{c['p50_ms']:.1f} | {c['p99_ms']:.1f} |")
ratio = c["p99_ms"] / b["p99_ms"] if b["p99_ms"] else float("nan")
print(f"\nThe failing neighbour received {bad['requests']:,} requests meanwhile.\n")
print("| target | measured | result |")
print("|---|---:|---|")
checks = [
    ("≥ 50,000 events/s delivered with ingestion running", f"{delivered_rate:,.0f} events/s", delivered_rate >= 50_000),
    ("p99 receipt → delivery < 100 ms at 5,000 events/s", f"{b['p99_ms']:.1f} ms", b["p99_ms"] < 100),
    ("isolation: p99 with failing neighbour / p99 alone ≤ 1.2", f"{ratio:.2f}", ratio <= 1.2),
]
for name, value, ok in checks:
    print(f"| {name} | {value} | {'PASS' if ok else 'FAIL'} |")
EOF
