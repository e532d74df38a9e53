"""Live updates: group names and payload shapes, in one place."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import redis
from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

try:  # private to channels_redis (4.2, 4.3): without them plain threads send from a loop, as other layers
    from channels_redis.utils import _consistent_hash, decode_hosts
except ImportError:  # pragma: no cover - a channels_redis that moved them
    _consistent_hash = decode_hosts = None

log = logging.getLogger(__name__)

MANAGERS = "desk.managers"


def group_for_team(group_id: int) -> str:
    return f"desk.group.{group_id}"


def group_for_ticket(ticket_id: int) -> str:
    """Everyone who has this ticket open: viewing/typing presence and changes to it."""
    return f"desk.ticket.{ticket_id}"


#: what an agent on a ticket page is doing; "left" removes them
PRESENCE_STATES = ("viewing", "typing", "left")


def ticket_presence_payload(*, ticket_id: int, user_id: int, name: str, state: str, reply_to: str = "") -> dict:
    """Sent to group_for_ticket(ticket_id). `reply_to` set: a newcomer asks the others to announce themselves."""
    return {"type": "ticket.presence", "ticket": ticket_id, "user": user_id, "name": name, "state": state,
            "reply_to": reply_to}


def ticket_payload(ticket_id: int, change: str) -> dict:
    """To group_for_ticket(ticket_id): the agents on that ticket's page."""
    return {"type": "ticket.changed", "ticket": ticket_id, "change": change}


def tickets_payload(changes: dict[int, str]) -> dict:
    """To a team or the managers: every change of one batch in one message, not one per ticket.

    A list of pairs, not a mapping: the layer's msgpack only takes string keys."""
    return {"type": "tickets.changed", "changes": [{"ticket": t, "change": c} for t, c in changes.items()]}


#: a queue socket sends at most one frame per this many seconds, carrying every change since the last
#: (200 agents' sockets each sent one frame per ticket change: bench/load.py, docs/benchmarks.md)
QUEUE_FRAME_EVERY_S = 0.2


def tickets_changed(changes: dict[int, str], *, teams: dict[int, int | None] | None = None) -> None:
    """Tell every agent who may see these tickets. Never raises: live updates are best effort.

    One message per group for the whole batch (managers, each team), plus one per ticket for its
    page. `teams` (ticket → group id) saves looking them up. Where the sends run: _deliver."""
    from omnidesk.tickets.models import Ticket

    try:
        if get_channel_layer() is None or not changes:
            return
        if teams is None or not changes.keys() <= teams.keys():
            teams = dict(Ticket.objects.filter(pk__in=list(changes)).values_list("pk", "group_id"))
        by_team: dict[int, dict[int, str]] = {}
        for ticket_id, change in changes.items():
            if teams.get(ticket_id):
                by_team.setdefault(teams[ticket_id], {})[ticket_id] = change
        sends = [(MANAGERS, tickets_payload(changes))]
        sends += [(group_for_team(team), tickets_payload(team_changes)) for team, team_changes in by_team.items()]
        sends += [(group_for_ticket(ticket_id), ticket_payload(ticket_id, change)) for ticket_id, change in changes.items()]
        _deliver(sends)
    except Exception as exc:  # noqa: BLE001
        log.warning("live update of %d ticket(s) not delivered: %s", len(changes), exc)


def incident_payload(incident_id: int) -> dict:
    """Only the id: each page fetches the incident banner scoped to what its agent may see."""
    return {"type": "incident.changed", "incident": incident_id}


def incidents_changed(incident_ids: set[int]) -> None:
    """Tell the managers and every team that incidents changed (opened, grew, resolved). Best effort."""
    from omnidesk.routing.models import Group

    try:
        if get_channel_layer() is None or not incident_ids:
            return
        groups = [MANAGERS] + [group_for_team(g) for g in Group.objects.values_list("pk", flat=True)]
        _deliver([(group, incident_payload(incident_id)) for incident_id in sorted(incident_ids) for group in groups])
    except Exception as exc:  # noqa: BLE001
        log.warning("live update of %d incident(s) not delivered: %s", len(incident_ids), exc)


_thread = threading.local()

#: a web process's sends from its request threads wait this long on the server's loop for the other
#: requests' to join them, merged into one message per group
SEND_BATCH_S = 0.02

#: each server loop's sends waiting for SEND_BATCH_S (an entry only while a batch waits)
_batches: dict[asyncio.AbstractEventLoop, list[tuple[str, dict]]] = {}
#: the batches being sent: the loop keeps only weak references to its tasks
_sending: set[asyncio.Task] = set()


def _deliver(sends: list[tuple[str, dict]]) -> None:
    """Send (group, payload) pairs from sync code, without starting a loop, thread or connection per call.

    In a request the server's own loop sends them and the request does not wait: it had blocked
    until the loop, busy feeding the websockets, got round to it, holding its database connection
    all the while (bench/load.py); a batch per SEND_BATCH_S also merges every request's changes
    into one message per group. A plain thread (a dramatiq worker, a command) has no such loop and
    sends at once, before returning: on the Pub/Sub layer with one pipelined PUBLISH round trip
    (_publish); on any other layer from a loop the thread keeps, idle between calls, so the layer's
    per-loop connections are reused (async_to_sync started a thread, a loop and a Redis connection
    on every call: 7 of the 8 ms CPU of a claim in bench/claim.py).
    """
    server = _server_loop()
    if server is not None:
        server.call_soon_threadsafe(_batch, server, sends)
        return
    if _publish(get_channel_layer(), sends):
        return
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    loop.run_until_complete(_send(sends))


#: the name of a thread's publishing connection in Redis' CLIENT LIST
PUBLISHER_NAME = "omnidesk-live"

#: (layer, its prefix, a connection pool per shard) for the layer last seen; no pools: not a Pub/Sub layer
_publisher: tuple[object, str, list[redis.ConnectionPool]] | None = None


def _publish(layer: object, sends: list[tuple[str, dict]]) -> bool:
    """PUBLISH each message as the Pub/Sub layer's group_send would, one round trip per shard; False for other layers.

    From a plain thread the layer's own group_send needs an event loop run per call, and the loop's
    machinery cost more than the sends (py-spy on bench/claim.py's service phase: run_until_complete
    ~65 % of a claim's Python CPU, group_send 27 %). The thread writes the commands on a connection
    of its own instead (a redis-py pipeline spent 100 µs per claim taking and checking a pooled
    connection, this 40 µs): no loop is involved, so none is left to close."""
    prefix, pools = _publisher_for(layer)
    if not pools:
        return False
    connections = _thread_connections(pools)
    for shard, batch in _by_shard(layer, prefix, len(pools), sends).items():
        _send_on(connections[shard], batch)
    return True


#: channels_redis' per-loop clients were not where _publish_on_loop looks (found once, then not looked for again)
_loop_internals_missing = False


async def _publish_on_loop(layer: object, sends: list[tuple[str, dict]]) -> bool:
    """_publish on the server loop: a batch's PUBLISHes pipelined, one round trip per shard; False for other layers.

    The layer's group_send awaits a round trip per group, each taking the shard's lock and a pooled
    connection: ~14 % of a web process's CPU in bench/claim.py's HTTP phase (py-spy), where a batch
    holds a message for the team, the managers and each claimed ticket's page. The pipeline runs on the
    layer's own client for this loop, which channels_redis closes with the loop."""
    global _loop_internals_missing
    prefix, pools = _publisher_for(layer)
    if not pools or _loop_internals_missing:
        return False
    try:  # this loop's clients, one per shard (channels_redis 4.2, 4.3), all found before anything is sent
        shards = layer._get_layer()._shards
        for shard in shards:
            shard._ensure_redis()
        clients = [shard._redis for shard in shards]
    except AttributeError as exc:  # its internals moved: every batch goes through group_send, as before
        _loop_internals_missing = True
        log.warning("live updates from the server loop fall back to the channel layer's group_send: %s", exc)
        return False
    for index, batch in _by_shard(layer, prefix, len(pools), sends).items():
        async with clients[index].pipeline(transaction=False) as pipe:
            for command in batch:
                pipe.execute_command(*command)
            await pipe.execute()
    return True


def _publisher_for(layer: object) -> tuple[str, list[redis.ConnectionPool]]:
    """The layer's prefix and a sync pool per shard, found once per layer; no pools: send through the layer."""
    global _publisher
    found = _publisher
    if found is None or found[0] is not layer:
        try:
            found = _publisher = (layer, *_shard_pools(layer))
        except Exception as exc:  # noqa: BLE001 - channels_redis' internals changed: send through the layer
            log.warning("live updates fall back to the channel layer's group_send: %s", exc)
            found = _publisher = (layer, "", [])
    return found[1], found[2]


def _by_shard(layer: object, prefix: str, shards: int, sends: list[tuple[str, dict]]) -> dict[int, list[tuple]]:
    """Each message's PUBLISH command, by shard. The channel names and the shard choice are channels_redis' own
    (pubsub.py group_send)."""
    commands: dict[int, list[tuple]] = {}
    for group, payload in sends:
        channel = f"{prefix}__group__{group}"
        commands.setdefault(_consistent_hash(channel, shards), []).append(
            ("PUBLISH", channel, layer.serialize(payload)))
    return commands


def _send_on(connection: redis.Connection, batch: list[tuple]) -> None:
    """One round trip; a connection Redis closed while it sat idle (a restart, its `timeout`) fails on first
    use and is tried once more afresh, as redis-py's own retry would (a message may then go out twice)."""
    for again in (True, False):
        try:
            connection.send_packed_command(connection.pack_commands(batch))
            for _ in batch:
                connection.read_response()
            return
        except redis.ConnectionError:
            connection.disconnect()
            if not again:
                raise
        except BaseException:
            connection.disconnect()  # replies may be left unread: the next call starts on a fresh connection
            raise


def _thread_connections(pools: list[redis.ConnectionPool]) -> list[redis.Connection]:
    """This thread's connection to each shard, made again for new pools or in a forked child."""
    held = getattr(_thread, "redis", None)
    if held is None or held[0] is not pools or held[1] != os.getpid():
        held = _thread.redis = (pools, os.getpid(), [pool.make_connection() for pool in pools])
    return held[2]


def _shard_pools(layer: object) -> tuple[str, list[redis.ConnectionPool]]:
    """The Pub/Sub layer's prefix and one sync pool per host (connection settings only); none for another layer
    or Sentinel hosts."""
    kwargs = getattr(layer, "_kwargs", None)  # what the layer was configured with (channels_redis 4.2, 4.3)
    if (not isinstance(layer, RedisPubSubChannelLayer) or getattr(layer, "_args", ()) or not isinstance(kwargs, dict)
            or _consistent_hash is None):
        return "", []
    hosts = decode_hosts(kwargs.get("hosts"))
    if not all("address" in host for host in hosts):
        return "", []
    pools = [redis.ConnectionPool.from_url(host["address"], **{"client_name": PUBLISHER_NAME, **{
        k: v for k, v in host.items() if k != "address"}}) for host in hosts]
    return kwargs.get("prefix", "asgi"), pools


def _batch(loop: asyncio.AbstractEventLoop, sends: list[tuple[str, dict]]) -> None:
    """On the server loop: join the batch waiting there, or start one."""
    if loop not in _batches:
        _batches[loop] = []
        loop.call_later(SEND_BATCH_S, _send_batch, loop)
    _batches[loop].extend(sends)


def _send_batch(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_send(merged(_batches.pop(loop, []))))
    _sending.add(task)
    task.add_done_callback(_sending.discard)


def merged(sends: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """One tickets.changed message per group carrying every (ticket, change) of the batch once, in order;
    any other message once."""
    out: dict[tuple, dict] = {}
    for group, payload in sends:
        if payload["type"] != "tickets.changed":
            out.setdefault((group, *sorted(payload.items())), payload)
            continue
        into = out.setdefault((group, "tickets.changed"), {"type": "tickets.changed", "changes": []})
        into["changes"] += [c for c in payload["changes"] if c not in into["changes"]]
    return [(key[0], payload) for key, payload in out.items()]


async def _send(sends: list[tuple[str, dict]]) -> None:
    try:
        layer = get_channel_layer()
        if await _publish_on_loop(layer, sends):
            return
        for group, payload in sends:
            await layer.group_send(group, payload)
    except Exception as exc:  # noqa: BLE001 - best effort, as tickets_changed
        log.warning("live update to %d group(s) not delivered: %s", len(sends), exc)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this process whose thread runs us (a Django view), if any."""
    main = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    same_process = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()
    return main if main is not None and same_process and main.is_running() else None
