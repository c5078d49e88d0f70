#!/usr/bin/env python3
"""Replays the embedded log's write path in Python's sqlite3 to see what each part costs.

Same schema, pragmas and statements per event as crates/sluice-store/src/log/sqlite.rs (as of
this benchmark), group commits of PER_COMMIT events, ~780-byte bodies (a normalized loadgen
event). Each variant drops or changes one thing. Not the server: an experiment to attribute
the writer's cost. Single-threaded, so absolute numbers include Python's own overhead.

    python3 bench/sqlite_writepath.py [DIR] [EVENTS]     # DIR on a real disk (default target/)
"""
import json
import os
import random
import sqlite3
import sys
import time

EVENTS_TABLE = """
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id TEXT NOT NULL,
  source_id TEXT NOT NULL, message_id TEXT NOT NULL, user_id TEXT, anonymous_id TEXT,
  received_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX events_by_source ON events(source_id, seq);
"""
PERSON_INDEXES = """
CREATE INDEX events_by_user ON events(workspace_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_anonymous ON events(workspace_id, anonymous_id) WHERE anonymous_id IS NOT NULL;
"""
DEDUP_TABLES = """
CREATE TABLE dedup_0 (workspace_id TEXT NOT NULL, message_id TEXT NOT NULL, PRIMARY KEY (workspace_id, message_id)) WITHOUT ROWID;
CREATE TABLE dedup_1 (workspace_id TEXT NOT NULL, message_id TEXT NOT NULL, PRIMARY KEY (workspace_id, message_id)) WITHOUT ROWID;
"""
PER_COMMIT = 200  # what /metrics shows for 4 connections of 100-event batches
USERS = 800


def io():
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def run(name, path, events, person_indexes=True, dedup=True, random_ids=True, cache_kib=2000,
        autocheckpoint=4000, synchronous="FULL", per_commit=PER_COMMIT):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "secure_delete=ON",
                   f"cache_size=-{cache_kib}", f"wal_autocheckpoint={autocheckpoint}"):
        db.execute("PRAGMA " + pragma)
    db.executescript(EVENTS_TABLE + (PERSON_INDEXES if person_indexes else "") + DEDUP_TABLES)
    workspace, source, body = "ws_0123456789abcdef0123", "src_b2fde88b32a08e3bfd95", "x" * 780
    rnd = random.Random(1)
    before, start, n, commits = io(), time.perf_counter(), 0, 0
    while n < events:
        db.execute("BEGIN")
        for _ in range(per_commit):
            message_id = f"{rnd.getrandbits(128):032x}" if random_ids else f"{n:032x}"
            user = rnd.randrange(USERS)
            if dedup:
                db.execute("SELECT 1 FROM dedup_1 WHERE workspace_id = ? AND message_id = ?",
                           (workspace, message_id)).fetchone()
                db.execute("INSERT OR IGNORE INTO dedup_0 VALUES (?, ?)", (workspace, message_id))
            db.execute(
                "INSERT INTO events(workspace_id, source_id, message_id, user_id, anonymous_id,"
                " received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (workspace, source, message_id, f"user_{user:06}",
                 f"{user:08x}-4b1e-4c2a-9f3d-{user * 40503:012x}", 1_700_000_000_000 + n, body))
            n += 1
        db.execute("COMMIT")
        commits += 1
    seconds = time.perf_counter() - start
    after = io()
    db.close()
    print(json.dumps({
        "variant": name,
        "events_per_s": round(n / seconds),
        "written_bytes_per_event": round((after["wchar"] - before["wchar"]) / n),
        "read_bytes_per_event": round((after["rchar"] - before["rchar"]) / n),
        "commits_per_s": round(commits / seconds, 1),
    }), flush=True)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target")
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "sqlite-writepath.db")
    try:
        run("as in sluice-store", path, events)
        run("SQLite page cache 64 MiB", path, events, cache_kib=65536)
        run("no checkpoint during the run", path, events, autocheckpoint=0)
        run("synchronous=OFF (no fsync)", path, events, synchronous="OFF")
        run("sequential messageIds", path, events, random_ids=False)
        run("no person indexes (user, anonymous)", path, events, person_indexes=False)
        run("no dedup tables", path, events, dedup=False)
        run("no person indexes, no dedup tables", path, events, person_indexes=False, dedup=False)
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


if __name__ == "__main__":
    main()
