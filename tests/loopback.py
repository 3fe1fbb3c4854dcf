"""A file server on 127.0.0.1 for download tests: HTTP Range, and faults on demand.

It runs in a daemon thread, answers only files it was given, and shuts itself
down after ``lifetime`` seconds even if a test forgets to.
"""

import contextlib
import http.server
import re
import socket
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold the thread

    def do_GET(self):  # noqa: N802 (the http.server API)
        owner = self.server.owner
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        owner.requests.append((name, rng))
        data = owner.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not owner.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in owner.truncate:  # announce everything, send half, hang up
            owner.truncate.discard(name)
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackServer:
    """``with LoopbackServer({'a.h5': b'...'}) as s: s.url('a.h5')``; ``s.requests`` logs (name, Range)."""

    def __init__(self, files: dict[str, bytes], lifetime: float = 120.0):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self.truncate: set[str] = set()
        self.ignore_range = False
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._watchdog = threading.Timer(lifetime, self._httpd.shutdown)
        self._watchdog.daemon = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def __enter__(self):
        self._thread.start()
        self._watchdog.start()
        return self

    def __exit__(self, *exc):
        self._watchdog.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A port of 127.0.0.1 that nobody listens on (now)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_url(name: str = "vgg19.h5") -> str:
    """A 127.0.0.1 URL on a port nobody listens on: connecting is refused, as when offline."""
    return f"http://127.0.0.1:{free_port()}/{name}"
