"""A loopback proxy in front of Sluice that loses responses.

Owns the "response lost after the server stored the batch" scenario: the first
`lose` POSTs are forwarded to Sluice and then answered 503 as if the connection
had dropped, so the SDK retries with the same messageIds. Everything else is
relayed unchanged.
"""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


class FlakyProxy:
    def __init__(self, upstream, lose):
        self.upstream = upstream
        self.lose = lose
        self.posts = []  # (path, status answered)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = requests.post(proxy.upstream + self.path, data=raw, headers=headers, timeout=10)
                status, body = upstream.status_code, upstream.content
                with proxy.lock:
                    if proxy.lose > 0:
                        proxy.lose -= 1
                        status, body = 503, b'{"code":"unavailable","message":"response lost (test proxy)"}'
                    proxy.posts.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
