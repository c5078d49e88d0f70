#!/usr/bin/env bash
# Sluice audience benchmark.
#
#   bash bench/audiences.sh        # about a minute after the build
#
# (a) Incremental evaluation cost per event with 50 audiences and 5 computed traits defined:
#     EVENTS events (default 200,000) of PROFILES people (default 10,000), each applied to its
#     person's state and the person evaluated, states in memory (`loadgen audience-eval`);
#     median of ROUNDS rounds. Target: under 10 µs per event.
# Settings (environment): EVENTS, PROFILES, ROUNDS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${EVENTS:-200000}
PROFILES=${PROFILES:-10000}
ROUNDS=${ROUNDS:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== building (release)" >&2
cargo build --release -p sluice-loadgen >&2
LOADGEN="$TARGET_DIR/release/loadgen"

echo "== incremental evaluation" >&2
EVAL=$("$LOADGEN" audience-eval --events "$EVENTS" --profiles "$PROFILES" --rounds "$ROUNDS")
echo "$EVAL" >&2

python3 - "$EVAL" <<'PY'
import json, sys
e = json.loads(sys.argv[1])
ns = e["ns_per_event_median"]
target = 10_000
print("| measure | result | target | ratio to target | verdict |")
print("|---|---|---|---|---|")
print(f"| incremental evaluation, {e['audiences']} audiences + {e['computed_traits']} traits, "
      f"{e['events']:,} events of {e['profiles']:,} people (median of {e['rounds']}) | "
      f"{ns/1000:.2f} µs/event | < 10 µs | {target/ns:.1f}x under | "
      f"{'PASS' if ns < target else 'FAIL'} |")
print()
print(f"rounds (ns/event): {', '.join(str(round(r)) for r in e['ns_per_event_rounds'])}; "
      f"changes in the last round: {e['changes']:,}")
PY
