"""A real ASGI server (web + websockets + embedded worker) in a subprocess, on its own SQLite file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from channels_plugins.twitter import webhook

ROOT = Path(__file__).resolve().parents[2]
DEMO_X_SECRET = "demo-consumer-secret"  # TwitterChannel.demo_account()
DEMO_X_USER_ID = "1000000000000000001"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DeskServer:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "REDIS_URL", "DRAMATIQ_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
        self.env.update(DATABASE_URL=f"sqlite:///{tmp / 'ws.sqlite3'}", MEDIA_ROOT=str(tmp / "media"),
                        OMNIDESK_DEMO_PASSWORD="omnidesk-demo", LOG_LEVEL="WARNING")
        self.proc: subprocess.Popen | None = None
        self.log = open(tmp / "server.log", "w+b")

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        self.manage("migrate", "--no-input")
        self.manage("seed_demo")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--no-pollers", "--no-scheduler"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def post_tweet(self, *, text: str, tweet_id: int, user: dict) -> None:
        """A mention through the real webhook, signed as X signs it (the demo account's secret)."""
        payload = {
            "for_user_id": DEMO_X_USER_ID,
            "tweet_create_events": [{
                "created_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                "id": tweet_id, "id_str": str(tweet_id), "text": text, "in_reply_to_status_id_str": None,
                "user": user, "entities": {"urls": []},
            }],
        }
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.url}/hooks/demo-twitter/", data=body, method="POST",
            headers={"Content-Type": "application/json", webhook.SIGNATURE_HEADER: webhook.sign(DEMO_X_SECRET, body)},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
