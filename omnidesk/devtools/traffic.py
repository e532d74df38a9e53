"""Load generation for the scale-out test and the benchmarks: keep-alive HTTP/1.1, agents' websockets.

The generator shares the machine's cores with the processes it measures, so it stays light:
requests are built as bytes before the clock starts and sent on raw asyncio streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

HOST = "127.0.0.1"


def http_request(method: str, path: str, *, port: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> bytes:
    """One whole HTTP/1.1 request (keep-alive), ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def api_webhook(*, slug: str, secret: str, payload: Mapping[str, object], port: int) -> bytes:
    """A POST to /hooks/<slug>/ of the generic API channel, signed with the account's secret."""
    from channels_plugins.api.client import SIGNATURE_HEADER, sign

    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
    return http_request("POST", f"/hooks/{slug}/", port=port, body=body, headers=headers)


class Conn:
    """A keep-alive HTTP/1.1 connection to 127.0.0.1:port (the server may close it when idle)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        return (await self.fetch(request))[0]

    async def fetch(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request."""
        reused = self.writer is not None
        try:
            return await self._fetch(request)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # The server closes keep-alive connections idle for a few seconds; a request written to
            # one that was already closed was never read, so it goes again on a fresh connection.
            if not (reused and getattr(exc, "unanswered", False)):
                raise
            return await self._fetch(request)

    async def _fetch(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        answered = False
        try:
            self.writer.write(request)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("server closed the connection before answering")
            answered = True
            status = int(status_line.split()[1])
            length, close = 0, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await self.reader.readexactly(length) if length else b""
            if close:
                self.close()
            return status, body
        except BaseException as exc:
            self.close()
            if not answered and isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
                exc.unanswered = True  # type: ignore[attr-defined]
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Posted:
    """What a batch of requests got back, by status, and from which port."""

    accepted: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    by_port: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def record(self, key: str, status: int | str, port: int, started: float) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status == 200:
            self.accepted.append(key)
            self.by_port[port] = self.by_port.get(port, 0) + 1


async def post_all(requests: list[tuple[str, int, bytes]], *, concurrency: int, into: Posted | None = None) -> Posted:
    """Closed loop: `concurrency` connections, each sending its next (key, port, request) when answered."""
    posted = into or Posted()
    lanes: list[list[tuple[str, int, bytes]]] = [requests[i::concurrency] for i in range(concurrency)]

    async def lane(items: list[tuple[str, int, bytes]]) -> None:
        conns: dict[int, Conn] = {}
        for key, port, request in items:
            conn = conns.setdefault(port, Conn(port))
            started = time.perf_counter()
            try:
                status: int | str = await conn.post(request)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                status = type(exc).__name__
            posted.record(key, status, port, started)
        for conn in conns.values():
            conn.close()

    await asyncio.gather(*(lane(items) for items in lanes if items))
    return posted


@dataclass
class Listener:
    """One agent's websocket: every (ticket id, change) it was told about, first received when (time.time())."""

    path: str
    port: int
    session_key: str
    received: dict[tuple[int, str], float] = field(default_factory=dict)
    presence: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    closed_with: int | None = None

    @property
    def seen(self) -> set[int]:
        return {ticket for ticket, _ in self.received}

    async def run(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        headers = {"Cookie": f"sessionid={self.session_key}", "Origin": f"http://{HOST}:{self.port}"}
        async with connect(f"ws://{HOST}:{self.port}{self.path}", additional_headers=headers,
                           max_queue=None, open_timeout=30) as ws:
            self.connected.set()
            receiving = asyncio.ensure_future(self._receive(ws))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([receiving, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            receiving.cancel()
            self.closed_with = ws.close_code

    async def _receive(self, ws) -> None:  # type: ignore[no-untyped-def]
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message.get("event") == "tickets.changed":  # the queue's frames
                for change in message["changes"]:
                    self.received.setdefault((int(change["ticket"]), str(change["change"])), now)
            elif message.get("event") == "ticket.changed":  # a ticket page's
                self.received.setdefault((int(message["ticket"]), str(message["change"])), now)
            elif message.get("event") == "presence":
                self.presence += 1


async def quiet(listeners: list[Listener], *, for_s: float, at_most_s: float) -> None:
    """Until no listener has received anything for `for_s` seconds (or `at_most_s` have passed)."""
    deadline, last, since = time.monotonic() + at_most_s, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < for_s:
        total = sum(len(lst.received) for lst in listeners)
        if total != last:
            last, since = total, time.monotonic()
        await asyncio.sleep(0.2)


def session_for(user) -> str:  # type: ignore[no-untyped-def]
    """A logged-in session for `user` (what the login page would create); its key is the cookie."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)
