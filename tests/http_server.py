"""A local HTTP server on 127.0.0.1 that serves bytes and misbehaves on purpose, for download tests.

Each request takes the next behaviour from a script (then ``default``):
``ok``, ``drop`` (send half the body, then close), ``500``, ``404``, ``403``, ``wrong`` (flip a byte),
``ignore-range`` (answer 200 with the whole body even when a Range is asked for), ``wrong-range`` (answer
a Range request with 206 and the bytes from 0), ``redirect-loop`` (302 to the same URL, forever),
``trickle`` (one byte every ``trickle_interval`` s), ``endless`` (no Content-Length, bytes until the client
hangs up), ``retry-after`` (503 with ``Retry-After: retry_after``).
Range and If-Range are honoured as a real server does; every request is logged.
"""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Request:
    path: str
    range: str | None
    if_range: str | None
    behaviour: str
    status: int


@dataclass
class ArchiveServer:
    payload: bytes
    etag: str = '"tm23-v1"'
    script: list[str] = field(default_factory=list)
    default: str = "ok"
    delay: float = 0.0  # seconds per 64 KiB sent, to make downloads overlap
    log: list[Request] = field(default_factory=list)
    trickle_interval: float = 0.05
    retry_after: int = 1

    def __post_init__(self):
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                with server._lock:
                    behaviour = server.script.pop(0) if server.script else server.default
                server._serve(self, behaviour)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/benchmarking_master_collection-20240316T202423Z-001.zip") -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def body_requests(self) -> list[Request]:
        """Requests answered with data (200 or 206)."""
        return [r for r in self.log if r.status in (200, 206)]

    def _record(self, h, behaviour: str, status: int) -> None:
        """Log before answering, so a client that has its answer always finds the request logged."""
        with self._lock:
            self.log.append(Request(h.path, h.headers.get("Range"), h.headers.get("If-Range"), behaviour, status))

    def _serve(self, h: http.server.BaseHTTPRequestHandler, behaviour: str) -> int:
        if behaviour == "redirect-loop":
            self._record(h, behaviour, 302)
            h.send_response(302)
            h.send_header("Location", h.path)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return 302
        if behaviour == "retry-after":
            self._record(h, behaviour, 503)
            h.send_response(503)
            h.send_header("Retry-After", str(self.retry_after))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return 503
        if behaviour == "endless":
            self._record(h, behaviour, 200)
            h.send_response(200)
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            try:
                while True:  # ~6 MB/s at most: a client without a bound cannot fill the disk of a test run
                    h.wfile.write(self.payload[:65536])
                    time.sleep(0.01)
            except OSError:  # the client hung up
                return 200
        if behaviour in ("500", "404", "403"):
            self._record(h, behaviour, int(behaviour))
            h.send_response(int(behaviour))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return int(behaviour)
        data = self.payload
        if behaviour == "wrong":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        asked = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        if asked and behaviour != "ignore-range" and (if_range is None or if_range == self.etag):
            start = int(asked.split("=")[1].split("-")[0])
            if start >= len(data):
                self._record(h, behaviour, 416)
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return 416
            status = 206
            if behaviour == "wrong-range":
                start = 0
        else:
            status = 200
        body = data[start:]
        self._record(h, behaviour, status)
        h.send_response(status)
        h.send_header("ETag", self.etag)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(body)))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        to_send = body[: len(body) // 2] if behaviour == "drop" else body
        if behaviour == "trickle":
            try:
                for i in range(len(to_send)):
                    h.wfile.write(to_send[i : i + 1])
                    h.wfile.flush()
                    time.sleep(self.trickle_interval)
            except OSError:
                pass
            h.close_connection = True
            return status
        for i in range(0, len(to_send), 65536):
            h.wfile.write(to_send[i : i + 65536])
            if self.delay:
                time.sleep(self.delay)
        h.wfile.flush()
        if behaviour == "drop":
            h.close_connection = True
        return status
