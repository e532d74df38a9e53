"""POST /api/v1/channel-accounts/<slug>/calls/import/: upload a call-log file (multipart or raw CSV)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from omnidesk.inbox.imports import DEFAULT_MAX_BYTES, ImportRefused, calls_import
from omnidesk.plugins.models import ChannelAccount
from omnidesk.routing.selectors import user_group_ids, user_is_manager
from omnidesk.tickets.selectors import ticket_list_for_user

from .permissions import IsDeskStaff


class RawFileParser(BaseParser):
    """A raw body (text/csv and friends) as bytes, read up to the import limit plus one byte."""

    media_type = "text/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        if stream is None:
            return b""
        return stream.read(_limit() + 1)


class OctetStreamParser(RawFileParser):
    media_type = "application/octet-stream"


def _limit() -> int:
    return int(settings.OMNIDESK.get("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES))


def _error(status: int, code: str, detail: str) -> Response:
    return Response({"error": code, "detail": detail}, status=status)


class CallImportView(APIView):
    """Import a CDR file into a phone channel account; answers with what became of every row.

    Send the file as multipart form field `file`, or as the raw body (`Content-Type: text/csv`).
    Idempotent: uploading the same file again adds nothing. Managers import into any account; agents
    into the accounts of their groups (default group), and see only the tickets they may see.
    """

    permission_classes = [IsDeskStaff]
    parser_classes = [MultiPartParser, RawFileParser, OctetStreamParser]

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
                 "text/csv": OpenApiTypes.BINARY},
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, slug: str) -> Response:
        accounts = ChannelAccount.objects.all()
        if not user_is_manager(request.user):
            accounts = accounts.filter(default_group_id__in=user_group_ids(request.user))
        account = accounts.filter(slug=slug).first()
        if account is None:
            return _error(404, "not_found", f"no channel account {slug!r} that you can see")
        data = request.data
        if not isinstance(data, bytes):
            upload = request.FILES.get("file")
            if upload is None:
                return _error(400, "no_file", "send the file as multipart field 'file' or as a text/csv body")
            if upload.size is not None and upload.size > _limit():
                return _error(413, "payload_too_large", f"the file is over the import limit of {_limit()} bytes")
            data = upload.read()
        if len(data) > _limit():
            return _error(413, "payload_too_large", f"the file is over the import limit of {_limit()} bytes")
        try:
            summary = calls_import(account=account, data=data)
        except ImportRefused as exc:
            return _error(400, "import_refused", str(exc))
        result = summary.as_dict()
        # a call threaded onto another group's ticket must not reveal that ticket
        result["tickets"] = sorted(ticket_list_for_user(user=request.user).filter(pk__in=result["tickets"])
                                   .values_list("pk", flat=True))
        return Response(result, status=200)
