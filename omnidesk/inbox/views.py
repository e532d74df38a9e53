"""POST /hooks/<account-slug>/: verify, store, acknowledge. Parsing happens later, in a worker."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from omnidesk.plugins.contract import Feature, Headers, RawEvent, WebhookRequest
from omnidesk.plugins.errors import ConfigInvalid, PluginError, SignatureInvalid, UnsupportedMediaType
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import UnknownPlugin
from omnidesk.plugins.services import account_plugin

from .services import inbound_event_enqueue, inbound_event_store, inbound_event_store_if_current


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


#: per process, the account each slug last resolved to: a webhook is verified with this copy and
#: stored by a statement that checks the copy is still current (inbound_event_store_if_current),
#: so the common case costs one statement, and a disabled or changed account is seen at once.
_accounts: dict[str, ChannelAccount] = {}


@csrf_exempt
def webhook(request: HttpRequest, slug: str) -> HttpResponse:
    body: bytes | HttpResponse | None = None
    known = _accounts.get(slug)
    if known is not None:
        body = _body(request)
        raw = _verified(request, known, body) if isinstance(body, bytes) else body
        if isinstance(raw, RawEvent):
            stored = inbound_event_store_if_current(account=known, raw=raw)
            if stored is not None:
                return _accepted(stored, created=True)
    # No copy, or it stored nothing (stale, a redelivery, an error to answer): every answer but
    # "accepted" comes from the account as the database has it now.
    account = ChannelAccount.objects.filter(slug=slug, enabled=True).first()
    if account is None:
        _accounts.pop(slug, None)
        return _error(404, "unknown_account", f"no enabled channel account {slug!r}")
    _accounts[slug] = account
    if body is None:
        body = _body(request)
    raw = _verified(request, account, body) if isinstance(body, bytes) else body
    if not isinstance(raw, RawEvent):
        return raw
    event, created = inbound_event_store(account=account, raw=raw)
    return _accepted(event.pk, created=created)


def _body(request: HttpRequest) -> bytes | HttpResponse:
    """The raw body, or the answer to a body over the size limit."""
    limit = settings.OMNIDESK["WEBHOOK_MAX_BYTES"]
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "bad_request", "Content-Length is not a number")
    if declared > limit:
        return _error(413, "payload_too_large", f"body of {declared} bytes is over the {limit}-byte limit")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "payload_too_large", f"body is over the {limit}-byte limit")
    return body


def _verified(request: HttpRequest, account: ChannelAccount, body: bytes) -> RawEvent | HttpResponse:
    """What to store once `account`'s plugin has verified the request, or the answer to give instead."""
    try:
        plugin = account_plugin(account)
    except (ConfigInvalid, UnknownPlugin, ValueError) as exc:
        return _error(503, "account_misconfigured", f"channel account {account.slug!r} cannot receive: {exc}")
    if Feature.PUSH not in plugin.capabilities.features:
        return _error(404, "no_webhooks", f"the {plugin.label} channel does not receive webhooks")
    hook = WebhookRequest(
        method=request.method or "GET",
        url=request.build_absolute_uri(),
        headers=Headers(dict(request.headers)),
        query=request.GET.dict(),
        body=body,
    )
    try:
        handshake = plugin.verify(hook)
    except SignatureInvalid as exc:
        return _error(401, exc.code, exc.message)
    except UnsupportedMediaType as exc:
        return _error(415, exc.code, exc.message)
    except PluginError as exc:  # anything else verify() refuses is the sender's mistake, never a 500
        return _error(400, exc.code, exc.message)
    if handshake is not None:
        return HttpResponse(handshake.body, status=handshake.status, content_type=handshake.content_type)
    if request.method != "POST":
        return _error(405, "method_not_allowed", "webhooks are delivered with POST")
    kept = {k: v for k, v in hook.headers.items() if _keep_header(k.lower())}
    return RawEvent(body=body, headers=kept)


def _accepted(event_id: int, *, created: bool) -> HttpResponse:
    if created:
        transaction.on_commit(lambda: inbound_event_enqueue([event_id]))
    return JsonResponse({"status": "accepted", "event": event_id, "duplicate": not created}, status=200)


# Signature and event headers stay with the stored body so an event can be re-verified and
# replayed; anything that may carry a credential does not.
_KEPT_HEADERS = {"content-type", "user-agent"}
_SECRET_HINTS = ("key", "token", "auth", "cookie", "password", "secret")


def _keep_header(name: str) -> bool:
    if any(hint in name for hint in _SECRET_HINTS):
        return False
    return name in _KEPT_HEADERS or name.startswith("x-")
