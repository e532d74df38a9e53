"""Django's ASGI handler, serving each request's middleware and view in one hop to a reused thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse


class OneHopASGIHandler(ASGIHandler):
    """Runs the middleware chain and the view as the WSGI handler does: in one hop, on a reused thread.

    Our views and most middleware are sync. In async mode Django hops to the request's thread for
    the chain, back to the loop for its innermost sync-only middleware, and again for each sync
    process_view and for the view (a MiddlewareMixin made async would hop twice more each), and it
    starts a new thread for every request and another to join it: together ~30 % of the web CPU of
    "next ticket" (docs/benchmarks.md). Here the chain runs in one hop, in the same middleware order,
    and each request borrows an idle thread: one request at a time per thread, as in a WSGI server's
    pool, so a connection is still opened, used and closed by one thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        async with ThreadSensitiveContext(executor=thread):
            await self.handle(scope, receive, send)
        self._idle.append(thread)  # not after an error: that thread may still be busy, and is dropped

    async def get_response_async(self, request: HttpRequest) -> HttpResponse:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
