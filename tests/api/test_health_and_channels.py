"""GET /api/v1/health/ and GET /api/v1/channels/."""

from __future__ import annotations

import os
import time

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from rest_framework.test import APIClient

from omnidesk.api import health
from tests.conftest import need, reachable

from .conftest import client_for

pytestmark = pytest.mark.django_db(transaction=False)


def test_health_is_ok_without_login_on_the_configured_setup():
    """Embedded here; in CI the real PostgreSQL, broker and Redis of .ci/run."""
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "channel_layer"}
    assert all(check["ok"] for check in body["checks"].values())


def test_health_names_the_embedded_components(settings, monkeypatch):
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    monkeypatch.setattr(dramatiq, "get_broker", StubBroker)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    body = APIClient().get("/api/v1/health/").json()
    assert "embedded" in body["checks"]["broker"]["detail"]
    assert "in-memory" in body["checks"]["channel_layer"]["detail"]


def test_a_bad_token_does_not_hide_health():
    response = APIClient().get("/api/v1/health/", HTTP_AUTHORIZATION="Token nonsense")
    assert response.status_code == 200


def test_unreachable_broker_is_503_with_the_component_and_reason(monkeypatch):
    import dramatiq

    monkeypatch.setattr(dramatiq, "get_broker", lambda: RedisBroker(url="redis://:hunter2@127.0.0.1:1/0"))
    started = time.monotonic()
    response = APIClient().get("/api/v1/health/")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing" and body["error"] == "unhealthy"
    assert body["checks"]["broker"]["ok"] is False
    assert "127.0.0.1:1" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True
    assert body["detail"].startswith("broker: ")
    assert "hunter2" not in response.content.decode()


def test_unreachable_redis_channel_layer_is_503(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 503
    check = response.json()["checks"]["channel_layer"]
    assert check["ok"] is False and "RedisChannelLayer" in check["detail"]


def test_a_hanging_check_is_cut_off_in_bounded_time():
    def hang() -> health.Check:
        time.sleep(3)
        return health.Check(True, "too late")

    started = time.monotonic()
    results = health.health_run(checks={"slow": hang, "fast": lambda: health.Check(True, "fine")}, timeout_s=0.2)
    assert time.monotonic() - started < 2
    assert results["fast"].ok and not results["slow"].ok
    assert "no answer within" in results["slow"].detail


def test_a_crashing_check_is_a_failure_not_a_500():
    def boom() -> health.Check:
        raise RuntimeError("kaput")

    assert health.health_run(checks={"x": boom})["x"] == health.Check(False, "RuntimeError: kaput")


def test_real_broker_answers(broker_url):
    broker = RedisBroker(url=broker_url) if broker_url.startswith("redis") else RabbitmqBroker(url=broker_url)
    check = health.check_broker(broker)
    assert check.ok, check.detail


def test_real_redis_channel_layer_round_trip(settings):
    url = os.environ.get("REDIS_URL", "")
    need(None if url and reachable(url) else "needs Redis for the channel layer: set REDIS_URL=redis://...")
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}}
    response = APIClient().get("/api/v1/health/")
    assert response.json()["checks"]["channel_layer"] == {"ok": True, "detail": "RedisChannelLayer delivered a test message"}


def test_channels_lists_the_api_plugin_with_capabilities_and_schema(agent):
    response = client_for(agent).get("/api/v1/channels/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert "load_errors" in body
    api = next(c for c in body["channels"] if c["kind"] == "api")
    assert api["label"] == "API"
    caps = api["capabilities"]
    assert {"push", "public_reply", "private_reply"} <= set(caps["features"])
    assert caps["max_length"] == 100_000 and caps["length_unit"] == "characters"
    assert caps["reply_window_s"] is None and caps["can_send"] is True
    schema = {field["name"]: field for field in api["config_schema"]}
    assert schema["secret"]["secret"] is True and schema["secret"]["required"] is True
    assert schema["callback_url"]["default"] == ""
    assert set(api["event_types"]) == {"message", "delivery", "status"}


def test_channels_need_login():
    response = APIClient().get("/api/v1/channels/")
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"error", "detail"}
