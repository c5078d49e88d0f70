"""The "CDN" for the browser SDK tests: a small http.server on its own loopback
port, so pages run cross-origin to Sluice the way they do in production.

Owns these routes (GET unless noted):
  /pages/<name>.html                       page from pages/, with __PLAN__ replaced by the plan JSON
  /analytics.js/v1/<wk>/analytics.min.js   analytics-next standalone build (what the snippet loads)
  /analytics-next/bundles/<file>           analytics-next lazy chunks
  /v1/projects/<wk>/settings               analytics-next CDN settings pointing at Sluice
                                           (batching delivery when plan["batching"])
  /rudder/analytics.js                     rudder analytics-js v3 bundled UMD build
  /sourceConfig/                           rudder analytics-js source config
  POST /report/<kind>                      what a page reports (events it sent, errors)
Everything else is 404 and remembered in `misses`.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from harness import NODE_MODULES, PAGES_DIR

AJS_UMD = NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd"
RUDDER_UMD = NODE_MODULES / "@rudderstack" / "analytics-js" / "dist" / "npm" / "modern" / "bundled" / "umd" / "index.js"


class PageServer:
    def __init__(self, plan, sluice_port):
        self.plan = plan
        self.sluice_port = sluice_port
        self.reports = []  # (kind, JSON body)
        self.misses = []  # paths answered 404
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def reported(self, kind):
        with self.lock:
            return [body for k, body in self.reports if k == kind]

    def settings(self, write_key):
        segment_io = {
            "apiKey": write_key,
            "apiHost": f"127.0.0.1:{self.sluice_port}/v1",
            "protocol": "http",
        }
        if self.plan.get("batching"):
            # one POST /v1/b for all events instead of one /v1/<letter> each
            segment_io["deliveryStrategy"] = {"strategy": "batching", "config": {"size": 10, "timeout": 1000}}
        return {"integrations": {"Segment.io": segment_io}, "metrics": {"sampleRate": 0}}

    def source_config(self, write_key):
        return {
            "source": {
                "id": "compat-source",
                "name": "compat",
                "writeKey": write_key,
                "workspaceId": "compat-workspace",
                "enabled": True,
                "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
                "destinations": [],
            }
        }

    def route(self, path):
        """(status, content type, body bytes) for a GET."""
        parts = path.split("/")
        if path.startswith("/pages/") and path.endswith(".html") and "/" not in path[len("/pages/"):]:
            page = PAGES_DIR / path[len("/pages/"):]
            if page.is_file():
                plan = json.dumps(self.plan).replace("</", "<\\/")
                return 200, "text/html; charset=utf-8", page.read_text().replace("__PLAN__", plan).encode()
        elif path.startswith("/analytics.js/v1/") and path.endswith("/analytics.min.js"):
            return 200, "application/javascript", (AJS_UMD / "standalone.js").read_bytes()
        elif path.startswith("/analytics-next/bundles/"):
            chunk = AJS_UMD / parts[-1]
            if chunk.is_file() and chunk.suffix == ".js":
                return 200, "application/javascript", chunk.read_bytes()
        elif len(parts) == 5 and parts[1:3] == ["v1", "projects"] and parts[4] == "settings":
            return 200, "application/json", json.dumps(self.settings(parts[3])).encode()
        elif path == "/rudder/analytics.js":
            return 200, "application/javascript", RUDDER_UMD.read_bytes()
        elif path.rstrip("/") == "/sourceConfig":
            return 200, "application/json", json.dumps(self.source_config(self.plan["writeKey"])).encode()
        return 404, "text/plain", b"not found"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = urlsplit(self.path).path
                status, ctype, body = server.route(path)
                if status == 404:
                    with server.lock:
                        server.misses.append(path)
                self._send(status, ctype, body)

            def do_POST(self):
                path = urlsplit(self.path).path
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not path.startswith("/report/"):
                    return self._send(404, "text/plain", b"not found")
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = raw.decode(errors="replace")
                with server.lock:
                    server.reports.append((path[len("/report/"):], body))
                self._send(204, "text/plain", b"")

        return Handler
