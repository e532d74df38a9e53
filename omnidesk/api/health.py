"""GET /api/v1/health/: database, dramatiq broker and channel layer, each answered within a few seconds.

Every check runs in its own thread with its own socket timeouts, so a black-holed host makes the
answer slow by at most TIMEOUT_S, never a hung worker or a 500.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from django.db import connections

TIMEOUT_S = 2.0

_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return _CREDENTIALS.sub(r"\1***@", f"{type(exc).__name__}: {text}")[:500]


# --- database ---------------------------------------------------------------------------


def check_database(alias: str = "default") -> Check:
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return Check(True, f"{connection.vendor} answered SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Check(False, f"the {connection.vendor} database did not answer SELECT 1: {_reason(exc)}")
    finally:
        connection.close()  # this thread's own connection; never reused


# --- dramatiq broker --------------------------------------------------------------------


def check_broker(broker: Any, *, timeout_s: float = TIMEOUT_S) -> Check:
    name = type(broker).__name__
    try:
        if name == "StubBroker":
            return Check(True, "embedded: the in-process worker of `serve` consumes the queue")
        if name == "RedisBroker":
            return _ping_redis_broker(broker, timeout_s)
        if name == "RabbitmqBroker":
            return _connect_rabbitmq(broker, timeout_s)
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"the {name} is unreachable: {_reason(exc)}")
    return Check(True, f"{name}: no health check for this broker type; assumed up")


def _ping_redis_broker(broker: Any, timeout_s: float) -> Check:
    import redis

    pool = broker.client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    probe_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    try:
        redis.Redis(connection_pool=probe_pool).ping()
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"the Redis broker at {where} did not answer PING: {_reason(exc)}")
    finally:
        probe_pool.disconnect()
    return Check(True, f"Redis broker at {where} answered PING")


def _connect_rabbitmq(broker: Any, timeout_s: float) -> Check:
    import pika

    params = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
    probes = []
    for original in params:
        probe = copy.deepcopy(original)
        probe.socket_timeout = timeout_s
        probe.stack_timeout = timeout_s
        probe.blocked_connection_timeout = timeout_s
        probe.connection_attempts = 1
        probe.retry_delay = 0
        probes.append(probe)
    where = ", ".join(f"{p.host}:{p.port}" for p in probes)
    try:
        pika.BlockingConnection(probes if len(probes) > 1 else probes[0]).close()
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"the RabbitMQ broker at {where} refused a connection: {_reason(exc)}")
    return Check(True, f"RabbitMQ broker at {where} accepted a connection")


# --- channel layer ----------------------------------------------------------------------


def check_channel_layer(layer_factory: Callable[[], Any], *, timeout_s: float = TIMEOUT_S) -> Check:
    """`layer_factory` makes a FRESH layer: the live one may be receiving on another event loop."""
    try:
        layer = layer_factory()
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"the channel layer cannot be created: {_reason(exc)}")
    if layer is None:
        return Check(False, "no channel layer is configured (CHANNEL_LAYERS); live updates cannot reach agents")
    name = type(layer).__name__
    if name == "InMemoryChannelLayer":
        return Check(True, "in-memory: live updates reach the websockets of this process")
    try:
        asyncio.run(asyncio.wait_for(_round_trip(layer), timeout_s))
    except asyncio.TimeoutError:
        return Check(False, f"the {name} did not deliver a test message within {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"the {name} could not deliver a test message: {_reason(exc)}")
    return Check(True, f"{name} delivered a test message")


async def _round_trip(layer: Any) -> None:
    try:
        channel = await layer.new_channel("health.")
        nonce = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "nonce": nonce})
        answer = await layer.receive(channel)
        if answer.get("nonce") != nonce:
            raise RuntimeError("a different message came back")
    finally:
        close = getattr(layer, "close_pools", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001,S110 - closing a probe's sockets is best effort
                pass


# --- all together -----------------------------------------------------------------------


def _default_checks() -> dict[str, Callable[[], Check]]:
    import dramatiq
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    def fresh_layer() -> Any:
        from django.conf import settings

        if DEFAULT_CHANNEL_LAYER not in getattr(settings, "CHANNEL_LAYERS", {}):
            return None
        return channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)

    return {
        "database": check_database,
        "broker": lambda: check_broker(dramatiq.get_broker()),
        "channel_layer": lambda: check_channel_layer(fresh_layer),
    }


def health_run(
    *, checks: dict[str, Callable[[], Check]] | None = None, timeout_s: float = TIMEOUT_S
) -> dict[str, Check]:
    """Run the checks concurrently; one that has not answered in time counts as failing."""
    checks = checks if checks is not None else _default_checks()
    pool = ThreadPoolExecutor(max_workers=len(checks) or 1, thread_name_prefix="health")
    try:
        futures = {name: pool.submit(fn) for name, fn in checks.items()}
        wait(futures.values(), timeout=timeout_s + 0.5)
        results: dict[str, Check] = {}
        for name, future in futures.items():
            if not future.done():
                results[name] = Check(False, f"no answer within {timeout_s:g} s")
            elif future.exception() is not None:
                results[name] = Check(False, _reason(future.exception()))  # type: ignore[arg-type]
            else:
                results[name] = future.result()
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
