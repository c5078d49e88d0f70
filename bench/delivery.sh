#!/usr/bin/env bash
# Sluice delivery benchmark: events from /v1/batch to a webhook destination on 127.0.0.1.
#
#   bash bench/delivery.sh          # about 3 minutes after the build
#
# Phases, in one run, against one fresh Sluice:
#   (a) throughput: batch ingestion at RATE events/s (default 60,000: 600 requests of 100
#       events a second, open loop) for PHASE_SECS while the destination (a webhook with batches
#       of 100) delivers to `loadgen sink`; delivered events/s = events / (time from the start
#       until the sink has them all), so a destination that falls behind scores lower;
#   (b) latency at 5,000 events/s (50 batch requests/s, open loop): the sink's p50/p99 of
#       (arrival time - Sluice's receivedAt);
#   (c) isolation: the same load with a second destination on the same source whose tool
#       answers 500 to everything, or never answers. (b) and the two (c) phases alternate for
#       ROUNDS rounds (default 3), the neighbours enabled and disabled through the admin API, so
#       that drift of the machine hits all three alike; the figure is the median p99 beside the
#       worse neighbour divided by the median p99 alone (target at most 1.2).
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
HANG_SINK_PORT=${HANG_SINK_PORT:-18192}
ROUNDS=${ROUNDS:-3}

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

"$LOADGEN" sink --listen "127.0.0.1:$SINK_PORT" --max-seconds 900 2>/dev/null &
PIDS+=($!)
wait_ready "http://127.0.0.1:$SINK_PORT/stats" "${PIDS[-1]}"
"$LOADGEN" sink --listen "127.0.0.1:$BAD_SINK_PORT" --behaviour fail --max-seconds 900 2>/dev/null &
PIDS+=($!)
wait_ready "http://127.0.0.1:$BAD_SINK_PORT/stats" "${PIDS[-1]}"
"$LOADGEN" sink --listen "127.0.0.1:$HANG_SINK_PORT" --behaviour hang --max-seconds 900 2>/dev/null &
PIDS+=($!)
wait_ready "http://127.0.0.1:$HANG_SINK_PORT/stats" "${PIDS[-1]}"

DATA="$WORK/data"
export SLUICE_ADMIN_TOKEN=bench-admin-token-not-secret-0123
SOURCE_JSON=$("$SLUICE" source create bench --json --data-dir "$DATA")
KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["write_key"])' "$SOURCE_JSON")
SOURCE_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$SOURCE_JSON")
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

# Neighbours: two more webhook destinations on the same source, created disabled; a round
# enables one of them (or none) for its phase through the admin API.
set_enabled() { # set_enabled DESTINATION_ID true|false
    curl -sf -X PATCH "http://127.0.0.1:$SLUICE_PORT/api/v1/destinations/$1" \
        -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"enabled\": $2}" >/dev/null
}
create_neighbour() { # create_neighbour NAME PORT -> prints its id
    curl -sf -X POST "http://127.0.0.1:$SLUICE_PORT/api/v1/destinations" \
        -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"type\":\"webhook\",\"sources\":[\"$SOURCE_ID\"],\"enabled\":false,\"settings\":{\"url\":\"http://127.0.0.1:$2/hook\",\"batch_size\":100}}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
FAILING_ID=$(create_neighbour failing "$BAD_SINK_PORT")
HANGING_ID=$(create_neighbour hanging "$HANG_SINK_PORT")

round() { # round NAME NEIGHBOUR_ID|"" -> prints the healthy sink's stats JSON
    if [[ -n $2 ]]; then set_enabled "$2" true; sleep 1; fi
    latency_phase "$1"
    if [[ -n $2 ]]; then set_enabled "$2" false; sleep 1; fi
}

echo "== (b, c) 5,000 events/s alone and beside a failing or hanging neighbour, $ROUNDS rounds" >&2
: >"$WORK/rounds.txt"
for r in $(seq "$ROUNDS"); do
    for kind in alone failing hanging; do
        case $kind in
            alone) neighbour="" ;;
            failing) neighbour=$FAILING_ID ;;
            hanging) neighbour=$HANGING_ID ;;
        esac
        line=$(round "$kind" "$neighbour")
        echo "   round $r $kind sink: $line" >&2
        echo "$kind $line" >>"$WORK/rounds.txt"
    done
done
BAD=$(stats "$BAD_SINK_PORT")
HUNG=$(stats "$HANG_SINK_PORT")

python3 - "$A" "$A_STATS" "$DRAIN_SECS" "$WORK/rounds.txt" "$BAD" "$HUNG" "$(nproc)" <<'EOF'
import json, statistics, sys
a, a_stats, drain, rounds_file, bad, hung, cores = sys.argv[1:8]
a, a_stats, bad, hung = (json.loads(x) for x in (a, a_stats, bad, hung))
drain = float(drain)
rounds = {"alone": [], "failing": [], "hanging": []}
for line in open(rounds_file):
    kind, stats = line.split(" ", 1)
    rounds[kind].append(json.loads(stats))
delivered_rate = a_stats["events"] / drain if drain == drain and drain > 0 else 0
print(f"Sluice, the load generator and the sinks share this machine's {cores} cores.\n")
print("| phase | ingested events/s | delivered events | delivered events/s | sink p50 ms | sink p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| (a) sustained | {a['events_per_s']:,.0f} | {a_stats['events']:,} | {delivered_rate:,.0f} "
      f"(all in {drain:.1f} s) | {a_stats['p50_ms']:.1f} | {a_stats['p99_ms']:.1f} |")
med = {}
for kind, label in (("alone", "(b) 5,000 events/s alone"), ("failing", "(c) beside a neighbour answering 500"),
                    ("hanging", "(c) beside a neighbour that never answers")):
    p50s = [s["p50_ms"] for s in rounds[kind]]
    p99s = [s["p99_ms"] for s in rounds[kind]]
    events = sum(s["events"] for s in rounds[kind])
    med[kind] = statistics.median(p99s)
    each = ", ".join(f"{x:.1f}" for x in p99s)
    print(f"| {label}, {len(p99s)} rounds | 5,000 | {events:,} | – | {statistics.median(p50s):.1f} | "
          f"{med[kind]:.1f} (rounds: {each}) |")
alone = sorted(s["p99_ms"] for s in rounds["alone"])
noise = alone[-1] / alone[0] if alone and alone[0] else float("nan")
print(f"\nNeighbours meanwhile: the failing one got {bad['requests']:,} requests, the hanging one "
      f"{hung['requests']:,}. Alone, the healthy p99 varied {noise:.2f}x between rounds (the noise).\n")
worst = max(med["failing"], med["hanging"])
ratio = worst / med["alone"] if med["alone"] else float("nan")
print("| target | measured | result |")
print("|---|---:|---|")
checks = [
    ("≥ 50,000 events/s delivered with ingestion running", f"{delivered_rate:,.0f} events/s", delivered_rate >= 50_000),
    ("p99 receipt → delivery < 100 ms at 5,000 events/s", f"{med['alone']:.1f} ms", med["alone"] < 100),
    ("isolation: median p99 beside the worse neighbour / median p99 alone ≤ 1.2", f"{ratio:.2f}", ratio <= 1.2),
]
for name, value, ok in checks:
    print(f"| {name} | {value} | {'PASS' if ok else 'FAIL'} |")
EOF
