#!/usr/bin/env bash
# Sluice audience benchmark: the three measures of issue 6 §7 in one table.
#
#   bash bench/audiences.sh        # about 10 minutes after the build (the backfill's history,
#                                  # 3.2 GB, is written once and kept under BENCH_TMP)
#
# (a) Incremental evaluation cost per event with 50 audiences and 5 computed traits defined:
#     EVENTS events (default 200,000) of PROFILES people (default 10,000), each applied to its
#     person's state and the person evaluated, states in memory (`loadgen audience-eval`);
#     median of ROUNDS rounds. Target: under 10 µs per event.
# (b) Backfill of BACKFILL_EVENTS events (default 10,000,000) of BACKFILL_PROFILES people
#     (default 1,000,000) over 90 days for 10 audiences, against the same 10 audiences as DuckDB
#     SQL over the same JSON lines, in the same run (`loadgen audience-history`,
#     `loadgen audience-backfill`, `bench/audience_duckdb.py`). Members and a checksum per
#     audience must agree on both sides, or the script fails. Medians of BACKFILL_ROUNDS rounds.
#     Target: Sluice faster than DuckDB. Compared: Sluice's engine over its audience history
#     (each profile's recorded events applied and evaluated, as the server's backfill does)
#     with DuckDB's query (table already loaded); and, for information, both from the file's
#     text (Sluice: parse and record each event by profile, as the consumer does when events
#     are logged, then the engine; DuckDB: load + query).
# (c) Normalize, hash and batch for audience sync: members/s each platform adapter plans from
#     the events' JSON text (`loadgen audience-sync`; a large batch is planned on the machine's
#     cores, at most two), SYNC_MEMBERS members, median of SYNC_ROUNDS rounds, in batches of
#     each adapter's maximum (10,000) and of 1,000. Target: at least 1,000,000 members/s. For
#     information, also with every member's names, city and postal code their own
#     (`--distinct`): the worst case for the planner's memo of values a batch repeats.
#
# Settings (environment): EVENTS, PROFILES, ROUNDS; BACKFILL_EVENTS, BACKFILL_PROFILES,
# BACKFILL_ROUNDS, THREADS (Sluice's backfill threads, default 2 = the machine's cores; DuckDB
# uses as many), BENCH_TMP (where the history goes, default the cargo target directory);
# SYNC_MEMBERS, SYNC_ROUNDS; SKIP (comma-separated: eval, backfill, sync).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${EVENTS:-200000}
PROFILES=${PROFILES:-10000}
ROUNDS=${ROUNDS:-5}
BACKFILL_EVENTS=${BACKFILL_EVENTS:-10000000}
BACKFILL_PROFILES=${BACKFILL_PROFILES:-1000000}
BACKFILL_ROUNDS=${BACKFILL_ROUNDS:-3}
THREADS=${THREADS:-2}
SYNC_MEMBERS=${SYNC_MEMBERS:-200000}
SYNC_ROUNDS=${SYNC_ROUNDS:-5}
SKIP=${SKIP:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_TMP=${BENCH_TMP:-$TARGET_DIR}
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

echo "== building (release)" >&2
cargo build --release -p sluice-loadgen >&2
LOADGEN="$TARGET_DIR/release/loadgen"
RESULTS=$(mktemp -d)
trap 'rm -rf "$RESULTS"' EXIT

if ! skip eval; then
    echo "== (a) incremental evaluation" >&2
    "$LOADGEN" audience-eval --events "$EVENTS" --profiles "$PROFILES" --rounds "$ROUNDS" \
        | tee "$RESULTS/eval.json" >&2
fi

if ! skip backfill; then
    python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb >&2
    HISTORY="$BENCH_TMP/audience-history-$BACKFILL_EVENTS-$BACKFILL_PROFILES"
    if ! python3 - "$HISTORY/history.json" "$BACKFILL_EVENTS" "$BACKFILL_PROFILES" <<'PY' 2>/dev/null
import json, sys
meta = json.load(open(sys.argv[1]))
sys.exit(0 if (meta["events"], meta["profiles"]) == (int(sys.argv[2]), int(sys.argv[3])) else 1)
PY
    then
        echo "== (b) writing the history ($BACKFILL_EVENTS events, $BACKFILL_PROFILES people) to $HISTORY" >&2
        rm -rf "$HISTORY"
        "$LOADGEN" audience-history --out "$HISTORY" --events "$BACKFILL_EVENTS" \
            --profiles "$BACKFILL_PROFILES" >&2
    fi
    echo "== (b) backfill: Sluice ($THREADS threads)" >&2
    "$LOADGEN" audience-backfill --data "$HISTORY" --rounds "$BACKFILL_ROUNDS" \
        --threads "$THREADS" > "$RESULTS/backfill.json"
    echo "== (b) backfill: DuckDB" >&2
    python3 bench/audience_duckdb.py "$HISTORY" "$BACKFILL_ROUNDS" "$THREADS" \
        > "$RESULTS/duckdb.json"
fi

if ! skip sync; then
    echo "== (c) audience sync, batches of each adapter's maximum" >&2
    "$LOADGEN" audience-sync --members "$SYNC_MEMBERS" --rounds "$SYNC_ROUNDS" \
        > "$RESULTS/sync.json"
    echo "== (c) audience sync, batches of 1,000" >&2
    "$LOADGEN" audience-sync --members "$SYNC_MEMBERS" --rounds "$SYNC_ROUNDS" --batch 1000 \
        > "$RESULTS/sync-1000.json"
    echo "== (c) audience sync, batches of each adapter's maximum, no name or place shared" >&2
    "$LOADGEN" audience-sync --members "$SYNC_MEMBERS" --rounds "$SYNC_ROUNDS" --distinct \
        > "$RESULTS/sync-distinct.json"
fi

python3 - "$RESULTS" <<'PY'
import json, os, sys

results = sys.argv[1]

def load(name):
    path = os.path.join(results, name)
    return json.load(open(path)) if os.path.exists(path) else None

rows = []
failed = False

e = load("eval.json")
if e:
    ns = e["ns_per_event_median"]
    rows.append((
        f"(a) incremental evaluation, {e['audiences']} audiences + {e['computed_traits']} traits, "
        f"{e['events']:,} events of {e['profiles']:,} people (median of {e['rounds']})",
        f"{ns / 1000:.2f} µs/event", "< 10 µs", f"{10_000 / ns:.1f}x under target",
        "PASS" if ns < 10_000 else "FAIL"))

s, d = load("backfill.json"), load("duckdb.json")
if s and d:
    ours = {a["key"]: (a["members"], a["sum"]) for a in s["audiences"]}
    theirs = {a["key"]: (a["members"], a["sum"]) for a in d["audiences"]}
    mismatches = [k for k in ours if ours[k] != theirs.get(k)] + [k for k in theirs if k not in ours]
    print(f"backfill members per audience (Sluice = DuckDB, also the sum of the members' user numbers):")
    for k in ours:
        mark = "ok" if ours[k] == theirs.get(k) else f"MISMATCH: DuckDB {theirs.get(k)}"
        print(f"  {k}: {ours[k][0]:,} members, checksum {ours[k][1]}  {mark}")
    if mismatches or s["events"] != d["events"]:
        print(f"\n!!!!!!!! BACKFILL MISMATCH: Sluice and DuckDB disagree on {mismatches or 'the event count'} !!!!!!!!\n")
        failed = True
    print()
    size = f"{s['events']:,} events of {s['profiles']:,} people, 10 audiences"
    engine, query = s["engine_s_median"], d["query_s_median"]
    rows.append((
        f"(b) backfill, {size}: Sluice engine (each profile's recorded history applied and evaluated; "
        f"{s['threads']} threads) vs DuckDB {d['duckdb']} query (table loaded; {d['threads']} threads), "
        f"medians of {s['rounds']}",
        f"{engine:.2f} s vs {query:.2f} s", "faster than DuckDB",
        f"Sluice/DuckDB {engine / query:.2f}", "PASS" if engine < query and not mismatches else "FAIL"))
    text, load_query = s["from_text_s_median"], d["load_s"] + query
    rows.append((
        f"(b) same, from the JSON lines: Sluice record (parse, record by profile) + engine vs DuckDB load + query",
        f"{text:.2f} s vs {load_query:.2f} s", "(information)",
        f"Sluice/DuckDB {text / load_query:.2f}", "–"))

for name, label in (("sync.json", "batches of 10,000"), ("sync-1000.json", "batches of 1,000"),
                    ("sync-distinct.json", "batches of 10,000, no name or place shared")):
    y = load(name)
    if not y:
        continue
    for p in y["platforms"]:
        rate = p["members_per_s"]
        headline = name == "sync.json"
        rows.append((
            f"(c) sync {p['platform']}: read the JSON text, normalize, SHA-256, batch ({label})",
            f"{rate / 1e6:.2f} M members/s", "≥ 1 M/s", f"{rate / 1e6:.2f}x target",
            ("PASS" if rate >= 1e6 else "FAIL") if headline else "–"))

print("| measure | result | target | ratio | verdict |")
print("|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
if e:
    print(f"(a) rounds (ns/event): {', '.join(str(round(r)) for r in e['ns_per_event_rounds'])}; "
          f"changes in the last round: {e['changes']:,}")
if s and d:
    print(f"(b) Sluice: record {s['record_s']:.2f} s (once, {s['history_bytes']:,} bytes of history), "
          f"rounds {', '.join(f'{x:.2f}' for x in s['engine_s'])} s. "
          f"DuckDB: load {d['load_s']:.2f} s (once), query {', '.join(f'{x:.2f}' for x in d['query_s'])} s.")
for name in ("sync.json", "sync-1000.json", "sync-distinct.json"):
    y = load(name)
    if y:
        print(f"(c) {name}: " + "; ".join(
            f"{p['platform']} {p['requests']:,} requests, {p['rows']:,} rows, {p['refused']:,} refused"
            for p in y["platforms"]))
sys.exit(1 if failed else 0)
PY
