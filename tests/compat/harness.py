"""Processes and HTTP plumbing for the compat tests.

Owns: finding/building the sluice binary, running `sluice serve` on a free
loopback port, creating sources, reading stored events back, running the SDK
driver scripts, and running headless Chromium. Every wait here is bounded and
every process started here is killed by its owner's stop()/teardown.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

COMPAT_DIR = Path(__file__).resolve().parent
REPO_ROOT = COMPAT_DIR.parent.parent
DRIVERS_DIR = COMPAT_DIR / "drivers"
PAGES_DIR = COMPAT_DIR / "pages"
NODE_MODULES = COMPAT_DIR / "node_modules"

ADMIN_TOKEN = "compat-admin-token-0123456789abcdef"
BUILD_TIMEOUT_S = 30 * 60
DRIVER_TIMEOUT_S = 60


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def stop_process(proc, grace_s=5):
    """Stops a process started with start_new_session=True, with its children."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def sluice_binary():
    """$SLUICE_BIN, or <repo>/target/debug/sluice (built with cargo if missing;
    $CARGO_TARGET_DIR is honoured)."""
    from_env = os.environ.get("SLUICE_BIN")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise RuntimeError(f"SLUICE_BIN={from_env} does not exist")
        return path
    path = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target")) / "debug" / "sluice"
    if not path.is_file():
        print(f"building {path} with `cargo build -p sluice` ...", file=sys.stderr)
        done = subprocess.run(
            ["cargo", "build", "-p", "sluice"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if done.returncode != 0 or not path.is_file():
            raise RuntimeError("cargo build -p sluice failed:\n" + done.stderr[-4000:])
    return path


class Sluice:
    """One `sluice serve` process on 127.0.0.1:<free port>."""

    def __init__(self, binary, data_dir, log_path):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = None
        self.proc = None
        self.env = dict(os.environ, SLUICE_ADMIN_TOKEN=ADMIN_TOKEN)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s=30):
        self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--data-dir", str(self.data_dir),
                 "--listen", f"127.0.0.1:{self.port}"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sluice did not answer GET /health within {timeout_s}s:\n{self.log_tail()}")

    def stop(self):
        stop_process(self.proc)

    def log_tail(self, n=40):
        return tail(self.log_path, n)

    def create_source(self, name):
        """`sluice source create NAME --json`, run while the server is up."""
        done = subprocess.run(
            [str(self.binary), "source", "create", name, "--json", "--data-dir", str(self.data_dir)],
            env=self.env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"source create failed ({done.returncode}): {done.stderr}"
        source = json.loads(done.stdout)
        assert source["name"] == name, source
        assert source["id"] and source["write_key"], source
        assert source["enabled"] is True, source
        return source

    def events(self, source_id, limit=100):
        resp = requests.get(
            f"{self.base_url}/api/v1/sources/{source_id}/events",
            params={"limit": limit},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=5,
        )
        assert resp.status_code == 200, f"events API: {resp.status_code} {resp.text[:500]}"
        return resp.json()["events"]

    def wait_for_events(self, source_id, count, timeout_s=20, settle_s=1.0, on_poll=None):
        """Polls until `count` events are stored, then once more after `settle_s`
        so late duplicates show up. Returns the final list (possibly longer)."""
        deadline = time.monotonic() + timeout_s
        events = []
        while time.monotonic() < deadline:
            events = self.events(source_id)
            if len(events) >= count:
                time.sleep(settle_s)
                return self.events(source_id)
            if on_poll:
                on_poll()
            time.sleep(0.25)
        raise AssertionError(
            f"only {len(events)} of {count} events stored after {timeout_s}s: "
            f"{[e.get('type') for e in events]}\n--- sluice log ---\n{self.log_tail()}"
        )


def run_driver(cmd, plan, timeout_s=DRIVER_TIMEOUT_S):
    """Runs a driver script with the plan as its one JSON argument. The driver
    prints one JSON object (what it sent, errors) as its last stdout line."""
    proc = subprocess.Popen(
        cmd + [json.dumps(plan)], cwd=COMPAT_DIR, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, err = proc.communicate()
        raise AssertionError(f"driver {cmd} timed out after {timeout_s}s\nstdout:{out}\nstderr:{err}")
    lines = [line for line in out.splitlines() if line.strip()]
    assert proc.returncode == 0 and lines, (
        f"driver {cmd} exited {proc.returncode}\nstdout:{out}\nstderr:{err[-4000:]}")
    report = json.loads(lines[-1])
    assert report["errors"] == [], f"SDK reported errors: {report['errors']}\nstderr:{err[-4000:]}"
    return report


def python_driver(sdk):
    return [sys.executable, str(DRIVERS_DIR / "python_sdk.py"), sdk]


def node_driver(script):
    return ["node", str(DRIVERS_DIR / script)]


class Chromium:
    """Headless Debian chromium on one URL, kept running until stop()."""

    FLAGS = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # belt and braces: nothing but loopback resolves
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]

    def __init__(self, profile_dir, log_path):
        self.profile_dir = Path(profile_dir)
        self.log_path = Path(log_path)
        self.proc = None

    def start(self, url):
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["chromium", *self.FLAGS, f"--user-data-dir={self.profile_dir}", url],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self):
        stop_process(self.proc)

    def log_tail(self, n=30):
        return tail(self.log_path, n)
