"""The workspace in a real browser (Debian's Chromium, headless) against a real ASGI server with websockets."""

from __future__ import annotations

import os
import re
import time

import pytest

from channels_plugins.twitter.textlength import weighted_length
from tests.conftest import need

from .server import ROOT, DeskServer

CHROMIUM = "/usr/bin/chromium"
#: where the screenshots go: tests/artifacts by default (a test run leaves the checkout clean);
#: OMNIDESK_SCREENSHOTS=docs/screenshots refreshes the ones the README shows
SHOTS = ROOT / os.environ.get("OMNIDESK_SCREENSHOTS", "tests/artifacts/screenshots")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    try:
        import playwright  # noqa: F401
    except ImportError:
        need("playwright (the Python package) is not installed: pip install playwright")
    need(None if os.path.exists(CHROMIUM) else "chromium not installed (apt-get install chromium chromium-driver)")
    desk = DeskServer(tmp_path_factory.mktemp("desk"))
    desk.start()
    yield desk
    desk.stop()


@pytest.fixture(scope="module")
def browser(server):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # launch() gives every run a fresh temporary user-data dir of its own
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def _login(browser, server, username):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "omnidesk-demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    return context, page


def _shot(page, name):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_agent_day(server, browser):  # type: ignore[no-untyped-def]
    """alice sees a tweet arrive live, takes it, watches the 280 counter, hands off to DM; bob collides."""
    from playwright.sync_api import expect

    alice_ctx, alice = _login(browser, server, "alice")
    alice.evaluate("() => fetch('/api/v1/routing/presence/', {method: 'POST', credentials: 'same-origin', "
                   "headers: {'Content-Type': 'application/json', 'X-CSRFToken': document.cookie.match(/csrftoken=([^;]+)/)[1]},"
                   " body: JSON.stringify({presence: 'online'})})")
    alice.wait_for_selector("body[data-live=on]")
    tweet_id = int(time.time() * 1000) << 22
    server.post_tweet(
        text="@omnidesk_demo my train was cancelled again and the app still says on time",
        tweet_id=tweet_id,
        user={"id": 1500000000000000077, "id_str": "1500000000000000077", "name": "Grace Commuter",
              "screen_name": "grace_rides", "followers_count": 48210, "verified": True},
    )
    # no reload: the row arrives over the websocket (applied by the server's embedded worker)
    row = alice.locator("#queue-rows tr", has_text="Grace Commuter")
    row.wait_for(timeout=15_000)
    assert "48210 followers" in row.inner_text() and "twitter" in row.inner_text()
    assert re.search(r"(left|overdue)", row.locator(".countdown").inner_text())
    _shot(alice, "queue")

    alice.click("#next-ticket")
    alice.wait_for_url(re.compile(r"/tickets/\d+/$"))
    ticket_url = alice.url
    assert "Grace Commuter" in alice.inner_text("#history")
    assert alice.input_value("#c-visibility") == "public"  # the tweet was public

    bob_ctx, bob = _login(browser, server, "bob")
    bob.goto(ticket_url)
    bob.wait_for_selector("body[data-live=on]")
    alice.wait_for_selector("#collision:has-text('bob is viewing this ticket')")
    bob.wait_for_selector("#collision:has-text('alice is viewing this ticket')")

    draft = "Sorry! See https://status.example.com/leeds-line for live updates"
    alice.fill("#c-text", "")
    alice.type("#c-text", draft, delay=5)
    assert weighted_length(draft) == 51 != len(draft)  # the URL weighs 23, as X counts it
    expect(alice.locator("#c-counter")).to_have_text("51 / 280")
    bob.wait_for_selector("#collision:has-text('alice is typing')")
    alice.type("#c-text", " 日本", delay=5)  # CJK weighs 2 each on X
    assert weighted_length(draft + " 日本") == 56
    expect(alice.locator("#c-counter")).to_have_text("56 / 280")
    _shot(alice, "composer")

    # the PII guard holds a public reply with a phone number and offers the private route
    alice.fill("#c-text", "Call us on +44 20 7946 0958 and we will sort it out")
    alice.click("#c-send")
    alice.wait_for_selector("#c-problem:has-text('phone number')")
    assert alice.is_visible("#c-private")
    alice.click("#c-dismiss")

    alice.fill("#c-text", "Hi Grace, could you DM us your booking reference?")
    alice.click("#c-handoff")
    alice.wait_for_selector(".msg.dir-out .badge.vis-private", timeout=15_000)
    history = alice.inner_text("#history")
    assert "could you DM us your booking reference?" in history
    _shot(alice, "ticket")

    # bob opened the ticket before alice's replies: sending asks him to confirm
    bob.fill("#c-text", "We are looking into it.")
    bob.click("#c-send")
    bob.wait_for_selector("#c-problem:has-text('alice sent a')")
    assert bob.is_visible("#c-anyway")
    alice_ctx.close()
    bob_ctx.close()


EVIL_MAIL = b"""From: Mallory <mallory@example.com>
To: support@demo.omnidesk.invalid
Subject: Invoice question
Message-ID: <xss-1@example.com>
Date: %(date)s
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<p>Hello <b>support</b></p>
<script>window.__pwned = 1; alert('xss-script')</script>
<img src="x" onerror="window.__pwned = 2; alert('xss-onerror')">
<a href="javascript:window.__pwned=3;alert('xss-link')" id="evil">click me</a>
<a href="JaVaScRiPt:alert('xss-2')">again</a>
<svg onload="window.__pwned = 4"><circle r="5"></circle></svg>
<iframe src="javascript:alert('xss-iframe')"></iframe>
<p onclick="window.__pwned = 5">paragraph</p>
"""


def test_hostile_email_executes_nothing(server, browser, tmp_path):  # type: ignore[no-untyped-def]
    from email.utils import formatdate

    mail = tmp_path / "evil.eml"
    mail.write_bytes(EVIL_MAIL.replace(b"%(date)s", formatdate().encode()))
    out = server.manage("replay_fixture", "demo-email", str(mail))
    ticket_id = int(re.search(r"ticket #(\d+)", out).group(1))

    context, page = _login(browser, server, "alice")
    dialogs, console = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(str(e)))
    page.goto(f"{server.url}/tickets/{ticket_id}/")
    page.wait_for_selector("#history .msg")
    assert "Hello" in page.inner_text("#history")
    for target in ("#history a:has-text('click me')", "#history p:has-text('paragraph')"):
        if page.is_visible(target):  # whatever survived sanitizing, clicking it must do nothing either
            page.click(target)
    page.wait_for_timeout(500)
    assert dialogs == []
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#history [onerror], #history [onload], #history [onclick]").count() == 0
    assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
    hrefs = page.eval_on_selector_all("a[href], iframe[src]", "els => els.map(e => e.getAttribute('href') ?? e.getAttribute('src') ?? '')")
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")]
    assert not [c for c in console if "xss" in c.lower() or "pwned" in c.lower()]
    context.close()
