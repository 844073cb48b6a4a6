"""A local stand-in for SendGrid's v3 API (and for a Slack-style webhook).

A real HTTP server on 127.0.0.1 and a free port. It records every request as
it arrived (method, path, headers, raw body bytes) and answers from a script
of replies, then with the default reply: 202 with an `X-Message-Id` header,
as SendGrid answers an accepted message.
"""

import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # For a 429: the X-RateLimit-Reset header is this far from the moment of
    # the answer (rounded up to whole epoch seconds, as SendGrid sends it).
    reset_in_seconds: float | None = None


def accepted() -> Reply:
    """SendGrid's answer to an accepted message (the id is filled in)."""
    return Reply(202)


def bad_request(field_name: str, message: str) -> Reply:
    body = {"errors": [{"message": message, "field": field_name, "help": None}]}
    return Reply(400, json.dumps(body).encode(), {"Content-Type": "application/json"})


def rate_limited(reset_in_seconds: float) -> Reply:
    """429 with SendGrid's rate-limit headers; the reset is whole epoch seconds,
    at least `reset_in_seconds` after the answer."""
    body = {"errors": [{"message": "too many requests", "field": None}]}
    return Reply(
        429,
        json.dumps(body).encode(),
        {
            "Content-Type": "application/json",
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
        },
        reset_in_seconds=reset_in_seconds,
    )


def server_error() -> Reply:
    body = {"errors": [{"message": "internal error", "field": None}]}
    return Reply(500, json.dumps(body).encode(), {"Content-Type": "application/json"})


class SendGridStandIn:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        # The status and headers of each answer, in the order given.
        self.answers: list[tuple[int, dict[str, str]]] = []
        self._replies: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> "SendGridStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._replies.extend(replies)

    def sent_to(self, path: str = "/v3/mail/send") -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def _next_reply(self) -> tuple[Reply, str]:
        with self._lock:
            reply = self._replies.popleft() if self._replies else accepted()
            # Only accepted messages get an id, numbered from 1.
            message_id = f"standin-{next(self._ids)}" if reply.status == 202 else ""
            return reply, message_id

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                standin.requests.append(
                    RecordedRequest(
                        method="POST",
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=body,
                        received_at=time.time(),
                    )
                )
                reply, message_id = standin._next_reply()
                headers = dict(reply.headers)
                if reply.status == 202:
                    headers["X-Message-Id"] = message_id
                if reply.reset_in_seconds is not None:
                    reset = math.ceil(time.time() + reply.reset_in_seconds)
                    headers["X-RateLimit-Reset"] = str(reset)
                standin.answers.append((reply.status, headers))
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@contextmanager
def running_standin() -> Iterator[SendGridStandIn]:
    """A started stand-in, stopped on exit (test modules wrap it in a fixture)."""
    standin = SendGridStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()
