"""Typed errors of the plugin contract. Every one carries a message a person can act on."""

from __future__ import annotations


class PluginError(Exception):
    """Base of every error a plugin raises on purpose."""

    code = "plugin_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigInvalid(PluginError):
    """An account's configuration does not fit the plugin's schema."""

    code = "config_invalid"


class SignatureInvalid(PluginError):
    """A webhook's signature is missing, malformed or wrong: refuse it, store nothing."""

    code = "signature_invalid"


class UnsupportedMediaType(PluginError):
    """A webhook's Content-Type is not what the channel sends: refuse it (415), store nothing."""

    code = "unsupported_media_type"


class MalformedPayload(PluginError):
    """The bytes are not what the channel sends (truncated JSON, broken CSV, ...)."""

    code = "malformed_payload"


class UnsupportedEvent(PluginError):
    """A well-formed payload of an event type the plugin does not declare."""

    code = "unsupported_event"


class SendError(PluginError):
    """A reply could not be sent. `retryable` says whether trying again can help."""

    code = "send_failed"
    retryable = False


class RetryableSendError(SendError):
    """The channel is down, slow or rate limited: the outbox retries with backoff.

    `maybe_delivered`: the request may have reached the channel and only its answer was lost (a
    read timeout, a 5xx after posting, an answer without the new id). The outbox then treats the
    reply as interrupted: a channel that can look up what it received is asked before the retry.
    """

    code = "send_retryable"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


class AuthorizationRequired(RetryableSendError):
    """Credentials were revoked or expired: the account needs re-authorization; replies wait."""

    code = "needs_reauthorization"


class PermanentSendError(SendError):
    """The channel refused the reply for good (bad recipient, policy): shown on the ticket."""

    code = "send_permanent"


class CapabilityError(PermanentSendError):
    """The reply asks for something the channel cannot do (e.g. a private reply on a public-only channel)."""

    code = "capability"


class ReplyTooLong(PermanentSendError):
    code = "reply_too_long"

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class ReplyWindowClosed(PermanentSendError):
    """The channel's reply window (e.g. Messenger's 24 h / 7 days) has closed."""

    code = "reply_window_closed"
