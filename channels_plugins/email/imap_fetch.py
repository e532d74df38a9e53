"""One poll of an IMAP account: acknowledge what the core committed, hand over new mail, IDLE.

The cursor (opaque to the core, JSON) holds per folder the UIDVALIDITY, the last UID handed
over, and the UIDs handed over but not yet acknowledged on the server. The core passes a
cursor back only after committing every item fetched with it, so acknowledging (MOVE, a
keyword, \\Seen) the cursor's `unacked` UIDs at the start of the next fetch never touches a
mail that is not safely stored. Killed in between: the same cursor comes back, the same UIDs
are acknowledged (idempotent), nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from omnidesk.plugins.contract import FetchResult, RawEvent

from . import msgids
from .client import ImapSession, SEEN

AckMode = Literal["leave", "seen", "keyword", "move"]
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class FolderState:
    uidvalidity: int = 0
    last_uid: int = 0
    #: handed over, not yet acknowledged on the server
    unacked: list[int] = field(default_factory=list)
    #: after a UIDVALIDITY change: UIDs up to here are the old mail renumbered (content keys)
    rescan_until: int = 0


@dataclass
class CursorState:
    folders: dict[str, FolderState] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: str | None) -> CursorState:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            return cls({name: FolderState(**state) for name, state in data.get("folders", {}).items()})
        except (ValueError, TypeError, AttributeError):
            # A cursor we cannot read is a fresh start: re-fetched mail is deduplicated by its key.
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {"v": 1, "folders": {name: vars(state) for name, state in sorted(self.folders.items())}},
            sort_keys=True, separators=(",", ":"),
        )


def content_key(raw: bytes) -> str:
    """Source key of a mail seen again after a UIDVALIDITY change: Message-ID AND a hash of the bytes.

    Message-ID alone is not enough (senders reuse them, some mail has none); the hash alone would
    make two deliveries of the same mail one.
    """
    head = _HEADER_END.split(raw, 1)[0]
    match = _MESSAGE_ID.search(head)
    ids = msgids.parse_msgids(match.group(1).decode("latin-1")) if match else []
    return f"mid:{ids[0] if ids else ''}:{hashlib.sha256(raw).hexdigest()}"


@dataclass(frozen=True)
class FetchSettings:
    folders: tuple[str, ...]
    ack: AckMode
    ack_keyword: str
    ack_folder: str
    batch: int
    import_existing: bool
    idle: bool
    idle_timeout_s: float
    poll_interval_s: float


def acknowledge(session: ImapSession, settings: FetchSettings, uids: list[int]) -> None:
    if not uids or settings.ack == "leave":
        return
    if settings.ack == "move":
        session.move(uids, settings.ack_folder)
        return
    # Our keyword also marks mail as imported for a rescan after a UIDVALIDITY change.
    flags: list[str | bytes] = [settings.ack_keyword]
    if settings.ack == "seen":
        flags.append(SEEN)
    session.add_flags(uids, flags)


def _collect(
    session: ImapSession, settings: FetchSettings, folder: str, state: FolderState, budget: int
) -> list[RawEvent]:
    new = session.new_uids(state.last_uid)[:budget]
    if not new:
        return []
    items = []
    keyword = settings.ack_keyword.encode().lower()
    fetched = session.fetch(new)
    for uid in new:
        if uid not in fetched:
            continue  # expunged between SEARCH and FETCH
        body, flags = fetched[uid]
        if uid <= state.rescan_until:
            if keyword in {f.lower() for f in flags} and settings.ack != "leave":
                continue  # imported before the server renumbered the folder
            key = content_key(body)
        else:
            key = f"imap:{folder}:{state.uidvalidity}:{uid}"
        items.append(RawEvent(body=body, headers={"X-Imap-Folder": folder, "X-Imap-Uid": str(uid)}, source_key=key))
        state.unacked.append(uid)
    state.last_uid = max(new)
    return items


def fetch_once(session: ImapSession, settings: FetchSettings, cursor: str | None) -> FetchResult:
    """Acknowledge, collect new mail from every folder, and IDLE on the first when there is none."""
    state = CursorState.load(cursor)
    items: list[RawEvent] = []
    for folder in settings.folders:
        uidvalidity, uidnext = session.select(folder)
        fs = state.folders.get(folder)
        if fs is None:
            fs = FolderState(uidvalidity=uidvalidity, last_uid=0 if settings.import_existing else max(uidnext - 1, 0))
        elif fs.uidvalidity != uidvalidity:
            # The server renumbered the folder: rescan it all, keyed by content (no duplicates).
            fs = FolderState(uidvalidity=uidvalidity, last_uid=0, rescan_until=max(uidnext - 1, 0) or 2**31)
        else:
            acknowledge(session, settings, fs.unacked)
            fs.unacked = []
        state.folders[folder] = fs
        items += _collect(session, settings, folder, fs, settings.batch - len(items))
        if len(items) >= settings.batch:
            break
    if items:
        return FetchResult(items=tuple(items), cursor=state.dump(), retry_after=0)
    if not (settings.idle and session.can_idle):
        return FetchResult(items=(), cursor=state.dump(), retry_after=settings.poll_interval_s)
    folder = settings.folders[0]
    if session.selected != folder:
        session.select(folder)
    # With several folders the others are polled between IDLEs on the first.
    wait = settings.idle_timeout_s if len(settings.folders) == 1 else min(settings.idle_timeout_s, settings.poll_interval_s)
    if session.idle(wait):
        items = _collect(session, settings, folder, state.folders[folder], settings.batch)
    return FetchResult(items=tuple(items), cursor=state.dump(), retry_after=0)
