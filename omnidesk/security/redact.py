"""Secret values never leave the process in text: errors kept on rows and log lines are redacted.

Plugins put what an upstream answered into their errors (a proxy's error page, a vendor's echo of
the request), and that text is stored, shown in the API and the admin, and logged. Every secret a
process decrypts is remembered here, and those chokepoints replace it with REDACTED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
#: shorter values would blank out ordinary words; real credentials are far longer
MIN_LENGTH = 6

_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def secrets_remember(values: Iterable[str]) -> None:
    """Called whenever channel-account secrets are decrypted (omnidesk.plugins.services)."""
    global _known
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH} - _known
    if fresh:
        with _lock:
            _known = _known | fresh


def secrets_redact(text: str) -> str:
    """`text` with every known secret value (and its URL-encoded form) replaced."""
    if not text or not _known:
        return text
    from urllib.parse import quote, quote_plus

    for value in sorted(_known, key=len, reverse=True):
        for form in {value, quote(value, safe=""), quote_plus(value)}:
            if form in text:
                text = text.replace(form, REDACTED)
    return text


class RedactSecretsFilter(logging.Filter):
    """On a handler: the message, its arguments and the traceback text, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        message = record.getMessage()
        clean = secrets_redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = secrets_redact(record.exc_text)
        if record.stack_info:
            record.stack_info = secrets_redact(record.stack_info)
        return True
