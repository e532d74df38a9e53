"""imapclient and smtplib wrapped: connections, authentication, and their errors made typed.

imapclient 4.x quirks handled here: `fetch()` refuses a range such as '1:*' (we search for UIDs
and fetch explicit lists), and it does not recover long-lived connections by itself (every
socket-level failure becomes `ConnectionLost`, and the adapter reconnects).
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from omnidesk.plugins.contract import (
    AuthorizationRequired,
    PermanentSendError,
    PluginError,
    RetryableSendError,
)

Security = Literal["tls", "starttls", "none"]
SEEN = b"\\Seen"
#: imapclient raises these (and OSError subclasses) when the server or the network goes away
_DROPPED: tuple[type[BaseException], ...] = (IMAPClientAbortError, imaplib.IMAP4.abort, OSError, EOFError)


class MailboxUnavailable(PluginError):
    """The IMAP server could not be reached or dropped us; the poller retries with backoff."""

    code = "mailbox_unavailable"


class ConnectionLost(MailboxUnavailable):
    """The connection died mid-conversation (socket error, BYE, timeout): reconnect."""

    code = "connection_lost"


class MailboxError(PluginError):
    """The server refused a command (a folder that does not exist, a read-only mailbox)."""

    code = "mailbox_error"


@dataclass(frozen=True)
class Login:
    host: str
    port: int
    security: Security
    username: str
    auth: Literal["password", "xoauth2"]
    secret: str
    timeout_s: float


def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class ImapSession:
    """One logged-in IMAP connection."""

    def __init__(self, login: Login) -> None:
        self.login = login
        self.client: IMAPClient | None = None
        self.capabilities: frozenset[bytes] = frozenset()
        self.selected: str = ""

    def connect(self) -> None:
        lg = self.login
        port = lg.port or (993 if lg.security == "tls" else 143)
        try:
            # Loading the CA bundle costs a poller ~0.1 s: only for a connection that uses it.
            context = _tls() if lg.security == "tls" else None
            client = IMAPClient(lg.host, port=port, ssl=lg.security == "tls", ssl_context=context, timeout=lg.timeout_s)
            if lg.security == "starttls":
                client.starttls(_tls())
        except ssl.SSLError as exc:
            raise MailboxUnavailable(f"TLS with {lg.host}:{port} failed: {exc}") from exc
        except (*_DROPPED, IMAPClientError) as exc:
            raise MailboxUnavailable(f"cannot connect to {lg.host}:{port}: {exc or type(exc).__name__}") from exc
        try:
            if lg.auth == "xoauth2":
                client.oauth2_login(lg.username, lg.secret)
            else:
                client.login(lg.username, lg.secret)
        except LoginError as exc:
            _quietly(client.shutdown)
            raise AuthorizationRequired(f"the IMAP server refused the credentials of {lg.username}: {_text(exc)}") from exc
        except _DROPPED as exc:
            _quietly(client.shutdown)
            raise ConnectionLost(f"{lg.host} closed the connection during login: {exc}") from exc
        self.client = client
        self.capabilities = frozenset(c.upper() for c in self._call(client.capabilities))

    @property
    def can_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    @property
    def can_move(self) -> bool:
        return b"MOVE" in self.capabilities

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _DROPPED as exc:
            self.close(quiet=True)
            raise ConnectionLost(f"lost the connection to {self.login.host}: {exc or type(exc).__name__}") from exc
        except IMAPClientError as exc:
            raise MailboxError(f"{self.login.host} refused {getattr(fn, '__name__', 'a command')}: {_text(exc)}") from exc

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise ConnectionLost("not connected")
        return self.client

    def select(self, folder: str) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of `folder`, selected read-write."""
        info = self._call(self._client().select_folder, folder)
        self.selected = folder
        uidnext = int(info.get(b"UIDNEXT", 0) or 0)
        return int(info.get(b"UIDVALIDITY", 0) or 0), uidnext

    def new_uids(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`. `last+1:*` always matches the highest UID, even when it is lower."""
        found = self._call(self._client().search, ["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in found if u > last_uid)

    def fetch(self, uids: Sequence[int], *, chunk: int = 50) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
        """uid → (raw bytes, flags), read with BODY.PEEK[] so nothing is marked \\Seen by reading."""
        out: dict[int, tuple[bytes, tuple[bytes, ...]]] = {}
        for i in range(0, len(uids), chunk):
            part = list(uids[i : i + chunk])
            data = self._call(self._client().fetch, part, [b"BODY.PEEK[]", b"FLAGS"])
            for uid, fields in data.items():
                body = fields.get(b"BODY[]")
                if body is not None:
                    out[int(uid)] = (bytes(body), tuple(fields.get(b"FLAGS", ())))
        return out

    def add_flags(self, uids: Iterable[int], flags: Sequence[str | bytes]) -> None:
        uids = list(uids)
        if uids:
            self._call(self._client().add_flags, uids, list(flags), silent=True)

    def move(self, uids: Iterable[int], folder: str) -> None:
        uids = list(uids)
        if not uids:
            return
        client = self._client()
        if not self._call(client.folder_exists, folder):
            self._call(client.create_folder, folder)
        if self.can_move:
            self._call(client.move, uids, folder)
        else:  # RFC 3501 only: copy, flag deleted, expunge just those (UIDPLUS) or all
            self._call(client.copy, uids, folder)
            self._call(client.delete_messages, uids, silent=True)
            if b"UIDPLUS" in self.capabilities:
                self._call(client.uid_expunge, uids)
            else:
                self._call(client.expunge)

    def idle(self, timeout_s: float) -> bool:
        """Wait in IDLE up to `timeout_s`; True as soon as the server reports new mail."""
        client = self._client()
        self._call(client.idle)
        woke = False
        try:
            deadline = time.monotonic() + timeout_s
            while not woke:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                responses = self._call(client.idle_check, timeout=min(left, 30.0))
                for response in responses:
                    if len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT"):
                        woke = True
                    if response and response[0] == b"BYE":
                        raise ConnectionLost(f"{self.login.host} said BYE during IDLE")
        finally:
            if self.client is not None:
                self._call(client.idle_done)
        return woke

    def noop(self) -> None:
        self._call(self._client().noop)

    def close(self, *, quiet: bool = False) -> None:
        client, self.client = self.client, None
        self.selected = ""
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection is going away either way
            _quietly(client.shutdown)


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def _text(exc: BaseException) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


# --- SMTP --------------------------------------------------------------------------------


def smtp_send(message: EmailMessage, *, login: Login, sender: str, recipients: Sequence[str]) -> None:
    """Send one message; raise RetryableSendError (4xx, network), PermanentSendError (5xx) or AuthorizationRequired."""
    port = login.port or {"tls": 465, "starttls": 587, "none": 25}[login.security]
    where = f"{login.host}:{port}"
    try:
        if login.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(login.host, port, timeout=login.timeout_s, context=_tls())
        else:
            smtp = smtplib.SMTP(login.host, port, timeout=login.timeout_s)
    except (OSError, smtplib.SMTPException) as exc:
        raise RetryableSendError(f"cannot connect to the SMTP server {where}: {exc}") from exc
    try:
        if login.security == "starttls":
            smtp.starttls(context=_tls())
        smtp.ehlo_or_helo_if_needed()
        # A relay that offers no AUTH (a local MTA, a test sink) is used without logging in; one
        # that needs it answers 530, which becomes AuthorizationRequired below.
        if login.username and login.secret and smtp.has_extn("auth"):
            if login.auth == "xoauth2":
                token = f"user={login.username}\x01auth=Bearer {login.secret}\x01\x01"
                smtp.auth("XOAUTH2", lambda challenge=None: token)
            else:
                smtp.login(login.username, login.secret)
        refused = smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))
        if refused and len(refused) == len(recipients):
            code, text = next(iter(refused.values()))
            raise _by_code(code, text, where)
    except smtplib.SMTPAuthenticationError as exc:
        raise AuthorizationRequired(f"the SMTP server {where} refused the credentials: {_reply(exc.smtp_error)}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise _by_code(code, text, where) from exc
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, exc.smtp_error, where) from exc
    except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as exc:
        raise RetryableSendError(f"the SMTP server {where} went away: {exc}") from exc
    except smtplib.SMTPException as exc:
        raise RetryableSendError(f"SMTP error from {where}: {exc}") from exc
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001
            smtp.close()


def _reply(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _by_code(code: int, text: bytes | str, where: str) -> PluginError:
    message = f"{where} answered {code} {_reply(text)}"
    if code == 535 or code == 534 or code == 530:
        return AuthorizationRequired(message)
    if 500 <= code < 600:
        return PermanentSendError(message)
    return RetryableSendError(message)
