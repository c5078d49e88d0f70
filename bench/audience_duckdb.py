"""The backfill benchmark's other side: the same ten audiences as DuckDB SQL.

    python3 bench/audience_duckdb.py DIR [ROUNDS] [THREADS]

DIR is a history written by `loadgen audience-history` (events.jsonl, profiles.jsonl,
history.json). The events and profiles are loaded into in-memory DuckDB tables first
(`load_s`, timed apart: read_json of the same JSON lines Sluice reads, timestamps converted to
epoch milliseconds). Then the one query that computes all ten audiences is run ROUNDS times
(`query_s`): per person, counts of matching events within each window, the audiences as
boolean expressions over those counts and the person's traits, and per audience the number of
members and the sum of their user numbers. Prints one JSON line.

Windows follow the engine (crates/sluice-audience/src/series.rs): an event counts until the
end of its hour plus the window, i.e. at `now` exactly when
    (floor(ts / HOUR) + 1) * HOUR + W > now
which for whole hours is the same as
    ts >= floor((now - W) / HOUR) * HOUR
so each window is a cutoff computed here. Everyone with at least one event has a state in a
backfill (and so is evaluated), which is why the people are those of the events table; a count
of 0 and "did not perform" are the same thing there too. A missing trait passes only `!=`.
"""

import json
import os
import statistics
import sys
import time

import duckdb

HOUR = 3_600_000
DAY = 24 * HOUR


def cutoff(now: int, window_ms: int) -> int:
    """The earliest timestamp that still counts at `now` under the window."""
    return ((now - window_ms) // HOUR) * HOUR


def query(now: int) -> str:
    c = lambda ms: cutoff(now, ms)  # noqa: E731
    counts = f"""
        count(*) FILTER (WHERE event = 'Order Completed' AND ts >= {c(30 * DAY)}) AS orders_30d,
        count(*) FILTER (WHERE event = 'Order Completed' AND total > 100 AND ts >= {c(90 * DAY)})
            AS big_orders_90d,
        count(*) FILTER (WHERE event = 'Product Viewed' AND ts >= {c(7 * DAY)}) AS views_7d,
        count(*) FILTER (WHERE event = 'Product Viewed' AND category IN ('shoes', 'hats')
            AND ts >= {c(36 * HOUR)}) AS shoe_views_36h,
        count(*) FILTER (WHERE event = 'Signed In' AND ts >= {c(7 * DAY)}) AS sign_ins_7d,
        count(*) FILTER (WHERE event = 'Product Added' AND ts >= {c(48 * HOUR)}) AS adds_48h,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts >= {c(48 * HOUR)}) AS orders_48h,
        count(*) FILTER (WHERE event = 'Coupon Applied' AND starts_with(code, 'SPRING'))
            AS spring_coupons,
        count(*) FILTER (WHERE event = 'Signed In' AND ts >= {c(90 * DAY)}) AS sign_ins_90d,
        count(*) FILTER (WHERE event = 'Signed In' AND ts >= {c(30 * DAY)}) AS sign_ins_30d,
        count(*) FILTER (WHERE event = 'Product Viewed' AND price >= 50 AND ts >= {c(60 * DAY)})
            AS dear_views_60d"""
    return f"""
    WITH per_person AS (
        SELECT user_id, {counts}
        FROM events GROUP BY user_id
    ), base AS (
        SELECT p.*, t.plan,
            orders_30d >= 1 AS recent_buyers,
            big_orders_90d >= 2 AS big_spenders,
            views_7d >= 3 AND NOT (orders_30d >= 1) AS browsers_not_buyers,
            shoe_views_36h >= 2 AS shoe_fans,
            coalesce(t.plan = 'pro', false) AND sign_ins_7d >= 1 AS active_pros,
            adds_48h >= 1 AND orders_48h = 0 AS cart_abandoners,
            spring_coupons >= 1 AS spring_coupon,
            sign_ins_90d >= 1 AND sign_ins_30d < 2 AS lapsed
        FROM per_person p LEFT JOIN profiles t USING (user_id)
    ), audiences AS (
        SELECT *,
            big_spenders OR (coalesce(plan = 'team', false) AND recent_buyers) AS vip,
            lapsed AND NOT active_pros AND coalesce(plan != 'free', true) AND dear_views_60d > 0
                AS win_back
        FROM base
    )
    SELECT {", ".join(
        f"count(*) FILTER (WHERE {a}), coalesce(sum(CAST(substr(user_id, 2) AS BIGINT)) FILTER (WHERE {a}), 0)"
        for a in AUDIENCES)}
    FROM audiences
    """


# In the order of `loadgen`'s definitions (bench/loadgen/src/backfill.rs).
AUDIENCES = [
    "recent_buyers",
    "big_spenders",
    "browsers_not_buyers",
    "shoe_fans",
    "active_pros",
    "cart_abandoners",
    "spring_coupon",
    "vip",
    "lapsed",
    "win_back",
]


def main() -> None:
    data = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count() or 1
    with open(os.path.join(data, "history.json")) as f:
        meta = json.load(f)
    keys = [a["key"] for a in meta["audiences"]]
    if keys != AUDIENCES:
        sys.exit(f"error: the history's audiences {keys} are not the ones this script knows")
    now = meta["now_ms"]
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")

    started = time.perf_counter()
    events = os.path.join(data, "events.jsonl")
    profiles = os.path.join(data, "profiles.jsonl")
    con.execute(
        """
        CREATE TABLE events AS
        SELECT userId AS user_id, event,
               epoch_ms(CAST("timestamp" AS TIMESTAMPTZ)) AS ts,
               properties.price AS price, properties.total AS total,
               properties.category AS category, properties.code AS code
        FROM read_json(?, format = 'newline_delimited', columns = {
            userId: 'VARCHAR', event: 'VARCHAR', "timestamp": 'VARCHAR',
            properties: 'STRUCT(price DOUBLE, total DOUBLE, category VARCHAR, code VARCHAR)'})
        """,
        [events],
    )
    con.execute(
        """
        CREATE TABLE profiles AS
        SELECT userId AS user_id, traits.plan AS plan
        FROM read_json(?, format = 'newline_delimited', columns = {
            userId: 'VARCHAR', traits: 'STRUCT(plan VARCHAR)'})
        """,
        [profiles],
    )
    load_s = time.perf_counter() - started
    (rows,) = con.execute("SELECT count(*) FROM events").fetchone()

    sql = query(now)
    times = []
    result = None
    for _ in range(max(rounds, 1)):
        started = time.perf_counter()
        result = con.execute(sql).fetchone()
        times.append(time.perf_counter() - started)
        print(f"   duckdb round: query {times[-1]:.3f} s", file=sys.stderr)
    audiences = [
        {"key": key, "members": int(result[2 * i]), "sum": int(result[2 * i + 1])}
        for i, key in enumerate(AUDIENCES)
    ]
    print(json.dumps({
        "duckdb": duckdb.__version__,
        "threads": threads,
        "events": rows,
        "load_s": load_s,
        "query_s": times,
        "query_s_median": statistics.median(times),
        "audiences": audiences,
    }))


if __name__ == "__main__":
    main()
