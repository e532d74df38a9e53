"""The HTTP path of "next ticket": the one-hop ASGI handler and its fixed number of request threads."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.asgi_http import OneHopASGIHandler


def _streamed(request: HttpRequest) -> StreamingHttpResponse:
    def parts() -> Iterator[bytes]:
        events.append(("part", threading.get_ident()))
        yield b"one,"
        yield b"two"

    return StreamingHttpResponse(parts(), content_type="text/plain")


def _plain(request: HttpRequest) -> HttpResponse:
    events.append(("view", threading.get_ident()))
    return HttpResponse(b"plain", content_type="text/plain")


inside = {"now": 0, "most": 0}
inside_lock = threading.Lock()


def _slow(request: HttpRequest) -> HttpResponse:
    with inside_lock:
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
    time.sleep(0.05)
    with inside_lock:
        inside["now"] -= 1
    return HttpResponse(str(threading.get_ident()).encode(), content_type="text/plain")


#: weak references to the objects of the last request of the views below
seen: dict[str, weakref.ref] = {}


class _Api(APIView):
    """A DRF view through the whole middleware: the lazy user, the session and messages, DRF's request and view."""

    authentication_classes = ()
    permission_classes = ()

    def get(self, request: Any) -> Response:
        assert not request._request.user.is_authenticated  # the lazy user, evaluated
        seen.update(request=weakref.ref(request._request), drf_request=weakref.ref(request), view=weakref.ref(self))
        return Response({"ok": True})


def _streamed_seen(request: HttpRequest) -> StreamingHttpResponse:
    seen.update(request=weakref.ref(request))
    return _streamed(request)


urlpatterns = [
    path("streamed/", _streamed), path("plain/", _plain), path("slow/", _slow), path("api/", _Api.as_view()),
    path("streamed-seen/", _streamed_seen),
]
events: list[tuple[str, int]] = []


@pytest.fixture
def handler(settings):  # type: ignore[no-untyped-def]
    settings.ROOT_URLCONF = __name__
    events.clear()

    def started(**kwargs: Any) -> None:
        events.append(("started", threading.get_ident()))

    def finished(**kwargs: Any) -> None:
        events.append(("finished", threading.get_ident()))

    request_started.connect(started)
    request_finished.connect(finished)
    yield OneHopASGIHandler()
    request_started.disconnect(started)
    request_finished.disconnect(finished)


def _get(app: Any, path: str, client: tuple[str, int] = ("127.0.0.1", 5000)) -> tuple[int, dict[bytes, bytes], bytes]:
    return async_to_sync(_aget)(app, path, client)


async def _aget(app: Any, path: str, client: tuple[str, int] = ("127.0.0.1", 5000)) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"testserver")], "scheme": "http", "server": ("testserver", 80),
             "client": client, "asgi": {"version": "3.0"}, "http_version": "1.1", "root_path": ""}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    events.append(("sent", 0))
    body = b""
    while True:
        part = await communicator.receive_output(10)
        body += part.get("body", b"")
        if not part.get("more_body"):
            break
    await communicator.wait(10)
    return start["status"], dict(start["headers"]), body


def test_a_plain_response_is_made_and_closed_in_one_thread_before_it_is_sent(handler):
    status, _, body = _get(handler, "/plain/")
    assert (status, body) == (200, b"plain")
    assert [name for name, _ in events] == ["started", "view", "finished", "sent"]  # connection back, then the bytes
    threads = {ident for name, ident in events if name != "sent"}
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_a_streamed_response_is_sent_whole_and_closed_after(handler):
    status, _, body = _get(handler, "/streamed/")
    assert (status, body) == (200, b"one,two")
    names = [name for name, _ in events]
    assert names[0] == "started" and names[-1] == "finished" and names.index("sent") < names.index("finished")
    assert events[0][1] == events[-1][1]  # started and finished on the request's thread


def test_an_unknown_path_still_answers_through_the_middleware(handler):
    status, headers, _ = _get(handler, "/nowhere/")
    assert status == 404 and headers[b"X-Content-Type-Options"] == b"nosniff"
    assert [name for name, _ in events] == ["started", "finished", "sent"]


def test_requests_beyond_the_threads_wait_their_turn(handler):
    capped = OneHopASGIHandler(threads=2)
    inside["most"] = 0

    async def burst() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        return await asyncio.gather(*(_aget(capped, "/slow/") for _ in range(7)))

    answers = async_to_sync(burst)()
    assert [status for status, _, _ in answers] == [200] * 7
    assert len({body for _, _, body in answers}) == 2 and inside["most"] == 2
    assert len(capped._idle) == 2 and not capped._waiting


@pytest.mark.parametrize(("url", "parts"), [("/api/", ("request", "drf_request", "view")), ("/streamed-seen/", ("request",))])
def test_an_answered_request_is_freed_without_the_cyclic_collector(handler, url, parts):
    """Its reference cycles are broken once it is answered: with the collector off, reference counting
    alone frees the request, DRF's request and the view (they used to wait for a collection, which
    moved them through the generations while other requests were in flight)."""
    seen.clear()
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        status, _, body = _get(handler, url)
        alive = [name for name in parts if seen[name]() is not None]
    finally:
        if was_enabled:
            gc.enable()
    assert status == 200 and body in (b'{"ok":true}', b"one,two")
    assert alive == []
