"""A scripted webhook receiver for the delivery tests (answers chosen per request)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedReceiver:
    """A loopback endpoint answering each POST with the next scripted answer.

    An answer is a dict: ``status`` (default 200), ``delay`` (seconds before answering),
    ``body`` (bytes) and ``cookie`` (a Set-Cookie value); the last one repeats.  ``received``
    holds ``(monotonic time, body, headers)`` per request.  ``respond`` (a callable of
    body and headers returning an answer), when set, replaces the script.
    """

    def __init__(self, answers=None):
        self.answers = list(answers or [{}])
        self.respond = None
        self.received = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer.lock:
                    index = len(outer.received)
                    outer.received.append((time.monotonic(), body,
                                           {k.lower(): v for k, v in self.headers.items()}))
                    headers = outer.received[-1][2]
                    answer = (outer.respond(body, headers) if outer.respond else
                              outer.answers[min(index, len(outer.answers) - 1)])
                if answer.get("delay"):
                    time.sleep(answer["delay"])
                payload = answer.get("body", b"")
                try:
                    self.send_response(answer.get("status", 200))
                    if answer.get("cookie"):
                        self.send_header("Set-Cookie", answer["cookie"])
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def bodies(self):
        """The bodies received, oldest first."""
        with self.lock:
            return [body for _at, body, _headers in self.received]

    def wait_for(self, count, timeout=5.0):
        """Wait until ``count`` requests arrived; True if they did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        """Stop the receiver."""
        self.httpd.shutdown()
        self.httpd.server_close()
