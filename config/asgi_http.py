"""Django's ASGI handler, serving each request in one hop to a reused thread."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.urls import set_script_prefix


class OneHopASGIHandler(ASGIHandler):
    """Runs a request as the WSGI handler does: `request_started`, the middleware chain, the view and
    the response's close in one hop, on a reused thread.

    Our views and most middleware are sync. In async mode Django hops to the request's thread for
    the chain, back to the loop for its innermost sync-only middleware, and again for each sync
    process_view and for the view (a MiddlewareMixin made async would hop twice more each), and it
    starts a new thread for every request and another to join it: together ~30 % of the web CPU of
    "next ticket" (docs/benchmarks.md). Its `handle` hops twice more (the `request_started`
    receivers, closing the response) and runs two tasks per request to notice a disconnect, which
    cannot stop a sync view anyway. Here one hop does it all, in the same middleware order, and
    each request borrows one of at most `threads` request threads (settings.WEB_REQUEST_THREADS):
    one request at a time per thread, as in a WSGI server's pool, so a connection is still opened,
    used and closed by one thread. A streaming response is sent as Django sends it (a disconnect
    stops it) and closed after.
    """

    def __init__(self, *, threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads or settings.WEB_REQUEST_THREADS
        self._started = 0
        self._idle: list[ThreadPoolExecutor] = []
        self._waiting: deque[asyncio.Future[ThreadPoolExecutor]] = deque()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = await self._borrow()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            self._drop()  # that thread may still be busy with the request
            raise
        self._give_back(thread)

    async def _borrow(self) -> ThreadPoolExecutor:
        """An idle request thread, a new one while fewer than `threads` exist, else the first one
        given back: the requests beyond wait their turn on the event loop, in order, as in a WSGI
        server's fixed pool, instead of each in a thread of its own waiting on the database pool
        (and failing after the pool's timeout)."""
        if self._idle:
            return self._idle.pop()
        if self._started < self.threads:
            self._started += 1
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        waiter: asyncio.Future[ThreadPoolExecutor] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one just as it was cancelled
                self._give_back(waiter.result())
            raise

    def _give_back(self, thread: ThreadPoolExecutor) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(thread)
                return
        self._idle.append(thread)

    def _drop(self) -> None:
        self._started -= 1
        while self._waiting and self._started < self.threads:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._started += 1
                waiter.set_result(ThreadPoolExecutor(max_workers=1, thread_name_prefix="request"))

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            request, response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            if response.streaming:
                await self._send_streaming(request, response, receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    def _respond(self, scope: dict[str, Any], body_file: Any) -> tuple[HttpRequest | None, HttpResponseBase]:
        """The request's whole life on its thread; a response that is not streamed is closed here,
        before it is sent (its body is bytes by then), so `request_finished` returns the database
        connection while the bytes are still on their way, and the request is let go (`let_go`)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
            let_go(request, response)
        return request, response

    async def _send_streaming(
        self, request: HttpRequest | None, response: HttpResponseBase, receive: Any, send: Any
    ) -> None:
        """Django's way: the body is sent while a task listens for the client going away."""
        sending = asyncio.create_task(self.send_response(response, send))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([listening, sending], return_when=asyncio.FIRST_COMPLETED)
            for task in (listening, sending):
                if not task.done():
                    task.cancel()
                with suppress(asyncio.CancelledError, RequestAborted):
                    await task
        finally:
            await sync_to_async(response.close, thread_sensitive=True)()
            let_go(request, response)


def let_go(request: HttpRequest | None, response: HttpResponseBase) -> None:
    """Break the reference cycles of an answered request, so that reference counting frees it at once.

    Django and DRF tie each request into cycles: the lazy `request.user` and `request.auser` close over
    the request, the message storage points back at it, and DRF's request, view and response point at
    one another (encode/django-rest-framework#5826, #7250). About 110 objects per "next ticket" were
    left for the cyclic collector; while 16 requests are in flight a collection finds most of them
    still alive and moves them to older generations, whose collections took 9 ms (gen 1) to 50 ms
    (gen 2), stalling every request of the process (bench/claim.py). Once the response is closed
    nothing reads these objects again: its status, headers and body are its own attributes.
    """
    context = getattr(response, "renderer_context", None)
    if context:
        for part in (context.get("view"), context.get("request")):
            if part is not None:
                part.__dict__.clear()
        response.renderer_context = None
    if request is not None:
        request.__dict__.clear()
