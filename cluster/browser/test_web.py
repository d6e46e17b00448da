#!/usr/bin/env python3
"""Browser tests of the web page (issue 15), in headless Chromium driven by selenium, against a
real 3-node cluster (started by cluster/bin/browser-test).

One scenario, in order, each step timed and screenshotted:

- Alice registers, signs out and signs in again on node 1, and lists an auction (20 s,
  anti-sniping window 8 s, extension 10 s) with a PNG made here (zlib + struct), whose photo
  then shows on the auction page; a title with markup in it is shown as text.
- Bob registers in a second browser on node 2, whose JavaScript clock is set an hour wrong:
  his countdown still agrees with the server's.
- Bob's bid below the minimum shows the error with the minimum; his bid is seen on Alice's page
  (node 1) within 1 s of its acknowledgement; Carol (the API, node 3) outbids him live.
- Bob's proxy bid (a maximum, through the proxy form) in the last 8 s moves the end time and
  the countdown on Alice's page; when the auction ends both pages show the winner at once (the
  end state comes with `auction_ended`, no reload); Bob's "my bids", watchlist and
  notifications, Alice's "my auctions", notifications and the listings show it.
- A file that is not an image shows the upload error on the create page; buy now (with its
  confirmation) ends an auction at once; a stream whose connection is cut resumes after its
  Last-Event-ID (no second snapshot) and shows the bid made meanwhile; the pages fit a 375 px
  wide screen; no page logs a script error or a Content-Security-Policy violation; every node
  serves the page with the CSP, and no module writes markup (innerHTML and the like).

Environment: BROWSER_NODE_URLS (comma-separated, default http://127.0.0.1:18381..18383),
BROWSER_ARTIFACTS (screenshots; default a new directory under /tmp/auction-browser),
BROWSER_AUCTION_SECONDS (default 20), CHROMEDRIVER (default /usr/bin/chromedriver),
CHROMIUM (default /usr/bin/chromium). Prints "browser: N passed, N failed" last; exits 1 on a
failure.
"""

import base64
import json
import os
import random
import re
import signal
import socket
import string
import struct
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

NODES = os.environ.get(
    "BROWSER_NODE_URLS", "http://127.0.0.1:18381,http://127.0.0.1:18382,http://127.0.0.1:18383"
).split(",")
ARTIFACTS = os.environ.get("BROWSER_ARTIFACTS") or time.strftime("/tmp/auction-browser/%Y%m%d-%H%M%S")
AUCTION_SECONDS = int(os.environ.get("BROWSER_AUCTION_SECONDS", "20"))
WINDOW_SECONDS = 8
EXTENSION_SECONDS = 10
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"
# Bob's JavaScript clock is this far behind: the countdown must not care.
BOB_CLOCK_SKEW_MS = -3_600_000
RUN = "".join(random.choice(string.ascii_lowercase) for _ in range(6))


# ---- helpers ------------------------------------------------------------------------------

def png(width, height, rgb):
    """A truecolour PNG, made with zlib and struct only."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def http(method, url, body=None, token=None):
    """The JSON API, for what no browser does here (Carol, and reading the server's state)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, (json.loads(text) if text else None)


def parse_time(iso):
    """RFC 3339 with milliseconds -> epoch seconds (float)."""
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def server_remaining(node, auction_id):
    """Seconds left before the auction's end, on the server's clock."""
    status, body = http("GET", f"{node}/api/v1/auctions/{auction_id}?consistency=local")
    assert status == 200, body
    a = body["auction"]
    return parse_time(a["endTime"]) - parse_time(a["serverTime"]), a


class Browser:
    """One headless Chromium with its own profile (cookies), on one node."""

    def __init__(self, name, base, clock_skew_ms=0, width=1280, height=1000):
        self.name = name
        self.base = base
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=en-US",
            f"--window-size={width},{height}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        if width < 500:
            # Headless windows are at least 500 px wide: a phone is emulated instead.
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)
        if clock_skew_ms:
            # Runs before the page's own scripts on every load (DevTools is not subject to the
            # page's CSP): Date.now() and new Date() are off by clock_skew_ms.
            self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
                (() => {
                  const skew = %d; const Real = Date; const realNow = Real.now.bind(Real);
                  class Skewed extends Real {
                    constructor(...a) { if (a.length === 0) super(realNow() + skew); else super(...a); }
                    static now() { return realNow() + skew; }
                  }
                  window.Date = Skewed;
                })();
            """ % clock_skew_ms})
        self.console = []

    def get(self, route):
        self.driver.get(f"{self.base}/{route}")
        self.wait_ready()

    def go(self, route):
        """A hash navigation inside the loaded app (no reload: streams and state carry on)."""
        self.driver.execute_script("location.hash = arguments[0];", route)

    def wait_ready(self):
        self.wait(10).until(lambda d: d.execute_script("return document.documentElement.dataset.appReady === 'true'"))

    def wait(self, seconds, poll=0.05):
        return WebDriverWait(self.driver, seconds, poll_frequency=poll)

    def el(self, css, seconds=10):
        return self.wait(seconds).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    # Read in one script call: the page re-renders parts of itself (the header on every session
    # change), so a found element may be replaced before a second call reads it.
    def text(self, css):
        """The element's rendered text (innerText, trimmed), or None when it is not there."""
        return self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;", css)

    def attr(self, css, name):
        return self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            css, name)

    def wait_text(self, css, predicate, seconds, what):
        def check(_driver):
            value = self.text(css)
            return value if value is not None and predicate(value) else False

        try:
            return self.wait(seconds).until(check)
        except TimeoutException:
            raise AssertionError(f"{self.name}: {what} within {seconds}s; {css} shows {self.text(css)!r}") from None

    def wait_attr(self, css, name, predicate, seconds, what):
        def check(_driver):
            value = self.attr(css, name)
            return value if value is not None and predicate(value) else False

        try:
            return self.wait(seconds).until(check)
        except TimeoutException:
            raise AssertionError(f"{self.name}: {what} within {seconds}s; {css}[{name}] is {self.attr(css, name)!r}") from None

    def fill(self, css, value):
        box = self.el(css)
        box.clear()
        box.send_keys(value)
        return box

    def click(self, css):
        """A real click, in the middle of the viewport (clear of the toasts in the corner)."""
        element = self.wait(10).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def screenshot(self, name):
        """A full-page PNG in ARTIFACTS."""
        path = os.path.join(ARTIFACTS, f"{Browser.shot_number:02d}-{self.name}-{name}.png")
        Browser.shot_number += 1
        try:
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1},
            })
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        except WebDriverException:
            self.driver.save_screenshot(path)
        SHOTS.append(path)
        return path

    def check_console(self):
        """Fails on script errors and CSP violations (refused network answers are expected)."""
        bad = []
        for entry in self.driver.get_log("browser"):
            self.console.append(entry)
            message = entry.get("message", "")
            if entry.get("level") != "SEVERE":
                continue
            if "Failed to load resource" in message:
                continue  # 4xx answers the page shows (too-low bid, 401 for a guest)
            bad.append(message)
        assert not bad, f"{self.name}: console errors: {bad}"

    def no_horizontal_scroll(self):
        width, inner = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];")
        assert width <= inner + 1, f"{self.name}: the page is {width}px wide in a {inner}px window"

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass


Browser.shot_number = 1
SHOTS = []


def register(b, email, name):
    b.get("#/register")
    b.el("#register-form")
    b.fill("#register-email", email)
    b.fill("#register-name", name)
    b.fill("#register-password", PASSWORD)
    b.screenshot("register")
    b.click("#register-submit")
    b.wait_text("#current-user", lambda t: t == name, 10, "signed in after registering")
    return b.attr("#current-user", "data-user-id")


def remaining_on_page(b):
    """The countdown's milliseconds left, as the page computes them."""
    value = b.attr("#countdown", "data-remaining-ms")
    return int(value) / 1000 if value else None


# ---- the scenario -------------------------------------------------------------------------

def fetch(url):
    """GET -> (status, headers, body bytes)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class Relay:
    """A TCP relay to a node whose connections the test can cut, as a flaky network would."""

    def __init__(self, upstream):
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets = set()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Drops every open connection (new ones still go through)."""
        with self.lock:
            sockets, self.sockets = self.sockets, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(sockets)

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut()


CSP_REQUIRED = ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                "object-src 'none'", "base-uri 'none'")
# Ways of turning data into markup or code; the app builds its DOM with createElement/textContent.
UNSAFE_JS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")


class Scenario:
    def __init__(self):
        self.alice = None
        self.bob = None
        self.auction_id = None
        self.title = f'Lamp <b>bold</b> & "quoted" {RUN}'
        self.ids = {}
        self.carol_token = None
        self.open_auction_id = None

    # 0
    def every_node_serves_the_page(self):
        for node in NODES:
            status, headers, body = fetch(f"{node}/")
            assert status == 200, (node, status)
            assert headers["Content-Type"].startswith("text/html"), headers["Content-Type"]
            csp = headers.get("Content-Security-Policy", "")
            for part in CSP_REQUIRED:
                assert part in csp, f"{node}/: the CSP {csp!r} lacks {part!r}"
        html = body.decode()
        # No inline script, no inline handler, no style attribute: all of it would be refused.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script> in index.html"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), "an inline event handler in index.html"
        assert not re.search(r"\sstyle\s*=", html, re.I), "a style attribute in index.html"
        # Every module the page loads (following imports), with its type, none writing markup.
        todo = re.findall(r'(?:src|href)="/assets/([^"]+)"', html)
        seen = set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            status, headers, body = fetch(f"{NODES[0]}/assets/{path}")
            assert status == 200, (path, status)
            kind = headers["Content-Type"]
            if path.endswith(".js"):
                assert kind.startswith("text/javascript"), (path, kind)
                source = body.decode()
                for bad in UNSAFE_JS:
                    assert bad not in source, f"{path} uses {bad}"
                todo += re.findall(r"from\s+'\./([^']+)'", source)
            elif path.endswith(".css"):
                assert kind.startswith("text/css"), (path, kind)
        assert "app.js" in seen and "style.css" in seen and len(seen) >= 8, seen
        print(f"  {len(seen)} files: {', '.join(sorted(seen))}")

    # 1
    def register_and_login(self):
        self.alice = Browser("alice", NODES[0])
        email = f"alice-{RUN}@example.com"
        self.ids["alice"] = register(self.alice, email, "Alice")
        self.alice.click("#logout-button")
        self.alice.el("#nav-login")
        self.alice.go("#/login")
        self.alice.el("#login-form")
        self.alice.fill("#login-email", email)
        self.alice.fill("#login-password", "wrong password")
        self.alice.click("#login-submit")
        self.alice.wait_text("#login-error", lambda t: "Wrong email or password" in t, 5, "the login error")
        self.alice.fill("#login-password", PASSWORD)
        self.alice.screenshot("login")
        self.alice.click("#login-submit")
        self.alice.wait_text("#current-user", lambda t: t == "Alice", 10, "signed in")
        # The session is the HttpOnly cookie: nothing in storage, nothing the page can read.
        stored = self.alice.driver.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie];")
        assert stored == [0, 0, ""], f"the page keeps session data where scripts see it: {stored}"
        cookies = {c["name"]: c for c in self.alice.driver.get_cookies()}
        assert cookies["session"]["httpOnly"], cookies
        self.alice.check_console()

    # 2
    def create_with_photo(self):
        a = self.alice
        a.go("#/sell")
        a.el("#create-form")
        a.fill("#create-title", self.title)
        a.fill("#create-description", f"A test lamp.\nSecond line <i>not markup</i> {RUN}.")
        a.fill("#create-category", f"lamps-{RUN}")
        a.fill("#create-starting-price", "10.00")
        a.fill("#create-buy-now", "100.00")
        a.fill("#create-duration", str(AUCTION_SECONDS))
        a.driver.find_element(By.CSS_SELECTOR, "#create-duration-unit option[value='seconds']").click()
        a.fill("#create-antisnipe-window", str(WINDOW_SECONDS))
        a.fill("#create-antisnipe-extension", str(EXTENSION_SECONDS))
        image = os.path.join(ARTIFACTS, "photo.png")
        with open(image, "wb") as f:
            f.write(png(96, 64, (220, 40, 40)))
        a.driver.find_element(By.CSS_SELECTOR, "#create-images").send_keys(image)
        a.screenshot("create-filled")
        a.click("#create-submit")
        a.wait(15).until(lambda d: re.search(r"#/auction/[0-9a-f-]{36}$", d.current_url))
        self.auction_id = a.driver.current_url.rsplit("/", 1)[1]
        a.el("#current-price")
        # The photo uploaded from the create page is on the auction page, and loaded.
        a.el("#main-image")
        a.wait(10).until(lambda d: d.execute_script(
            "const i = document.getElementById('main-image'); return i.complete && i.naturalWidth === 96;"))
        assert "/api/v1/images/" in a.attr("#main-image", "src")
        # User text is text: the markup in the title is shown, not rendered.
        assert a.text("#auction-title") == self.title, a.text("#auction-title")
        assert a.driver.execute_script("return document.querySelector('#auction-title').children.length") == 0
        assert a.driver.execute_script("return document.querySelector('#auction-description i')") is None
        assert a.text("#seller") == "you"
        a.screenshot("auction-created")
        a.check_console()

    # 3
    def second_session_on_another_node(self):
        self.bob = Browser("bob", NODES[1], clock_skew_ms=BOB_CLOCK_SKEW_MS)
        self.ids["bob"] = register(self.bob, f"bob-{RUN}@example.com", "Bob")
        b = self.bob
        skewed = b.driver.execute_script("return Date.now() - performance.timeOrigin - performance.now();")
        assert abs(skewed - BOB_CLOCK_SKEW_MS) < 5000, f"the clock skew was not applied: {skewed}"
        b.go(f"#/auction/{self.auction_id}")
        b.el("#bid-form")
        b.wait_text("#stream-state", lambda t: t.startswith("Live"), 10, "the live stream")
        # Bob's clock is an hour behind; his countdown is still the server's.
        left, _ = server_remaining(NODES[1], self.auction_id)
        shown = remaining_on_page(b)
        assert shown is not None and abs(shown - left) < 1.5, \
            f"Bob's countdown says {shown}s left, the server {left:.2f}s (his clock is 1 h off)"
        assert abs(remaining_on_page(self.alice) - left) < 1.5
        b.click("#watch-toggle")
        b.wait_attr("#watch-toggle", "aria-pressed", lambda v: v == "true", 5, "watching")
        b.check_console()

    # 4
    def too_low_bid_shows_the_minimum(self):
        b = self.bob
        b.fill("#bid-amount", "5.00")
        b.click("#bid-submit")
        text = b.wait_text("#bid-message", lambda t: "too low" in t, 5, "the too-low error")
        assert "10.00" in text, f"the error does not name the minimum bid 10.00: {text!r}"
        assert b.attr("#bid-message", "role") == "alert"
        b.screenshot("bid-too-low")
        b.check_console()

    # 5
    def bid_seen_by_the_other_session_within_a_second(self):
        b, a = self.bob, self.alice
        assert a.text("#current-price") == "10.00"
        b.fill("#bid-amount", "12.00")
        clicked = time.monotonic()
        b.click("#bid-submit")
        b.wait_text("#bid-message", lambda t: "high bidder at 12.00" in t, 5, "the bid's acknowledgement")
        acknowledged = time.monotonic()
        a.wait_text("#current-price", lambda t: t == "12.00", 1.0, "the new price on node 1 within 1 s of the bid")
        seen = time.monotonic()
        print(f"  alice saw 12.00 {seen - acknowledged:.3f}s after bob's acknowledgement "
              f"({seen - clicked:.3f}s after his click)")
        a.wait_text("#bid-count", lambda t: t == "1", 1.0, "the bid count")
        a.wait_text("#minimum-bid", lambda t: t == "13.00", 2.0, "the new minimum bid")
        a.wait_text("#bid-history", lambda t: "12.00" in t, 2.0, "the bid in the history")
        assert a.attr("#extension-notice", "hidden") is not None, \
            "a bid outside the anti-sniping window extended the auction"
        b.wait_text("#my-status", lambda t: t == "You are the high bidder.", 2, "Bob's status")
        a.screenshot("price-seen-live")
        b.screenshot("bid-accepted")

    # 6
    def outbid_through_the_api_on_a_third_node(self):
        api = f"{NODES[2]}/api/v1"
        email = f"carol-{RUN}@example.com"
        status, body = http("POST", f"{api}/auth/register", {"email": email, "password": PASSWORD, "displayName": "Carol"})
        assert status == 201, body
        self.ids["carol"] = body["user"]["id"]
        status, body = http("POST", f"{api}/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200, body
        self.carol_token = body["token"]
        status, body = http("POST", f"{api}/auctions/{self.auction_id}/bids", {"amount": "13.00"}, self.carol_token)
        assert status == 201 and body["status"] == "winning", body
        self.bob.wait_text("#current-price", lambda t: t == "13.00", 2, "Carol's bid on Bob's page")
        self.bob.wait_text("#my-status", lambda t: t == "You have been outbid.", 2, "Bob outbid")
        self.bob.el("[data-testid='toast'][data-type='outbid']", 5)
        self.alice.wait_text("#current-price", lambda t: t == "13.00", 2, "Carol's bid on Alice's page")
        self.bob.screenshot("outbid")
        self.bob.check_console()

    # 7
    def late_bid_extends_the_countdown(self):
        a, b = self.alice, self.bob
        # Wait (on the server's clock) for the anti-sniping window.
        deadline = time.monotonic() + AUCTION_SECONDS + 5
        while True:
            left, auction = server_remaining(NODES[1], self.auction_id)
            if left < WINDOW_SECONDS - 0.7:
                break
            assert time.monotonic() < deadline, "the anti-sniping window never came"
            time.sleep(min(0.2, max(0.05, left - WINDOW_SECONDS + 0.5)))
        assert left > 1.0, f"too late for the anti-sniping bid: {left:.2f}s left"
        assert auction["endTime"] == auction["originalEndTime"]
        end_before = a.attr("#end-time", "data-end-time")
        shown_before = remaining_on_page(a)
        # The late bid is Bob's proxy: a maximum of 20.00 steps him to 14.00 over Carol's 13.00.
        b.fill("#proxy-amount", "20.00")
        b.click("#proxy-submit")
        b.wait_text("#proxy-message", lambda t: "maximum of 20.00 is set" in t and "high bidder at 14.00" in t, 5,
                    "the late proxy bid's acknowledgement")
        end_after = a.wait_attr("#end-time", "data-end-time", lambda v: v != end_before, 1.5,
                                "the late bid moving the end time on Alice's page")
        assert parse_time(end_after) > parse_time(end_before), (end_before, end_after)
        notice = a.el("#extension-notice", 2).text
        assert notice.startswith("Extended by"), notice
        shown_after = remaining_on_page(a)
        assert shown_after > shown_before + 1 and shown_after > EXTENSION_SECONDS - 2.5, \
            f"Alice's countdown went from {shown_before}s to {shown_after}s"
        a.wait_text("#current-price", lambda t: t == "14.00", 1.0, "the late bid's price on Alice's page")
        left, _ = server_remaining(NODES[0], self.auction_id)
        assert abs(remaining_on_page(a) - left) < 1.5, (remaining_on_page(a), left)
        b.wait_attr("#end-time", "data-end-time", lambda v: v == end_after, 2, "the new end on Bob's page")
        print(f"  end moved from {end_before} to {end_after}; countdown {shown_before:.1f}s -> {shown_after:.1f}s")
        a.screenshot("extended")
        b.screenshot("extended")

    # 8
    def the_end_shows_the_winner(self):
        a, b = self.alice, self.bob
        left, _ = server_remaining(NODES[0], self.auction_id)
        bob = self.ids["bob"]
        text = a.wait_text("#end-banner", lambda t: t.startswith("Sold"), max(left, 0) + 8, "the end on Alice's page")
        assert text == f"Sold to bidder {bob[:8]} for 14.00.", text
        assert a.attr("#end-banner", "data-winner-id") == bob
        mine = b.wait_text("#end-banner", lambda t: t.startswith("You won"), 3, "the end on Bob's page")
        assert mine == "You won this auction for 14.00.", mine
        assert b.text("#countdown") == "Ended"
        assert not b.driver.find_elements(By.CSS_SELECTOR, "#bid-form"), "the bid form is still there"
        b.wait_text("#my-status", lambda t: t == "You won.", 2, "Bob's status")
        a.el("[data-testid='toast'][data-type='auction_sold']", 5)
        b.el("[data-testid='toast'][data-type='auction_won']", 5)
        a.screenshot("ended")
        b.screenshot("won")
        a.check_console()
        b.check_console()

    # 9
    def the_lists(self):
        a, b = self.alice, self.bob
        b.go("#/me/bids")
        b.wait_text("#my-bids", lambda t: self.title in t, 5, "the auction in Bob's bids")
        status = b.text(f"#my-bids [data-auction-id='{self.auction_id}'] [data-testid='my-bid-status']")
        assert status == "Won", status
        b.screenshot("my-bids")
        b.go("#/me/watchlist")
        b.wait_text("#watchlist", lambda t: self.title in t, 5, "the auction in Bob's watchlist")
        b.screenshot("watchlist")
        b.go("#/me/notifications")
        b.wait_text("#notifications", lambda t: "won" in t.lower(), 5, "Bob's notifications")
        types = b.driver.execute_script(
            "return [...document.querySelectorAll('#notifications [data-testid=notification]')].map(e => e.dataset.type);")
        assert "auction_won" in types and "outbid" in types, types
        b.screenshot("notifications")
        a.go("#/me/auctions")
        a.wait_text("#my-auctions", lambda t: self.title in t and "Sold" in t, 5, "Alice's auction, sold")
        a.screenshot("my-auctions")
        a.go("#/me/notifications")
        a.wait_text("#notifications", lambda t: "sold" in t.lower(), 5, "Alice's notifications")
        a.screenshot("notifications")
        # The listings: search by the run's word; the ended auction is under "Ended".
        a.go(f"#/?q={RUN}&status=sold%2Cunsold")
        a.wait_text("#auction-list", lambda t: self.title in t, 5, "the auction found by search")
        _, found = http("GET", f"{NODES[0]}/api/v1/search?q={RUN}&status=sold")
        if any("cover" in item for item in found["items"]):  # listings carry the first photo's thumbnail
            a.wait(5).until(lambda d: d.execute_script(
                "const i = document.querySelector(`[data-auction-id='${arguments[0]}'] img[data-testid=card-cover]`);"
                "return i && i.complete && i.naturalWidth === 96;", self.auction_id))
        a.screenshot("search-ended")
        # Through the form: words, then "Show: All" (a select applies at once).
        a.go("#/")
        a.el("#search-form")
        a.wait_text("#results-summary", lambda t: t != "Searching…", 5, "the listings")
        a.screenshot("listings")
        a.fill("#search-q", f"lamp {RUN}")
        a.driver.find_element(By.CSS_SELECTOR, "#filter-status option[value='all']").click()
        a.wait(5).until(lambda d: "status=all" in d.current_url and "q=lamp" in d.current_url)
        a.wait_text("#auction-list", lambda t: self.title in t, 5, "the auction found through the form")
        assert "Showing 1 of 1" in a.text("#results-summary"), a.text("#results-summary")
        a.screenshot("search-form")
        for browser in (a, b):
            browser.check_console()

    # 10
    def upload_error_on_the_create_page(self):
        a = self.alice
        a.go("#/sell")
        a.el("#create-form")
        a.fill("#create-title", f"Not a photo {RUN}")
        a.fill("#create-starting-price", "3.00")
        bogus = os.path.join(ARTIFACTS, "not-an-image.png")
        with open(bogus, "w") as f:
            f.write("this is text, not a PNG\n")
        a.driver.find_element(By.CSS_SELECTOR, "#create-images").send_keys(bogus)
        a.click("#create-submit")
        text = a.wait_text("#create-upload-results", lambda t: "not a JPEG, PNG or WebP" in t, 10, "the upload error")
        assert "not-an-image.png" in text
        a.el("#view-created-auction")
        a.el("#image-form")
        a.screenshot("upload-error")
        # The photo manager takes a real one.
        good = os.path.join(ARTIFACTS, "photo-2.png")
        with open(good, "wb") as f:
            f.write(png(40, 40, (30, 90, 200)))
        a.driver.find_element(By.CSS_SELECTOR, "#image-file").send_keys(good)
        a.click("#image-upload")
        a.wait_text("#images-message", lambda t: "1 photo added" in t, 10, "the photo manager's upload")
        a.el("[data-testid='manager-thumbnail']")
        a.screenshot("photo-manager")
        other = a.attr("#view-created-auction", "href").rsplit("/", 1)[1]
        self.open_auction_id = other
        a.go(f"#/auction/{other}/images")
        a.el("[data-testid='images-page'] [data-testid='manager-thumbnail']")
        a.screenshot("images-page")
        a.go(f"#/auction/{other}")
        a.el("#main-image")
        a.wait_text("#auction-title", lambda t: t == f"Not a photo {RUN}", 5, "the second auction")
        a.check_console()

    # 11
    def buy_now(self):
        b = self.bob
        status, body = http("POST", f"{NODES[2]}/api/v1/auctions", {
            "title": f"Buy me now {RUN}", "startingPrice": "20.00", "buyNowPrice": "50.00",
            "durationSeconds": 600}, self.carol_token)
        assert status == 201, body
        auction = body["auction"]["id"]
        b.go(f"#/auction/{auction}")
        b.el("#buy-now")
        assert b.text("#buy-now") == "Buy now for 50.00"
        b.click("#buy-now")
        b.el("#buy-now-confirm-row")
        b.screenshot("buy-now-confirm")
        b.click("#buy-now-confirm")
        text = b.wait_text("#end-banner", lambda t: t.startswith("You won"), 5, "the purchase")
        assert text == "You won this auction for 50.00.", text
        status, body = http("GET", f"{NODES[0]}/api/v1/auctions/{auction}")
        assert body["auction"]["status"] == "sold" and body["auction"]["winnerId"] == self.ids["bob"], body
        b.screenshot("bought")
        b.check_console()

    # 12
    def stream_resumes_after_a_dropped_connection(self):
        relay = Relay(NODES[2])
        watcher = Browser("watcher", relay.url)
        try:
            watcher.get(f"#/auction/{self.open_auction_id}")
            watcher.wait_attr("#stream-state", "data-state", lambda v: v == "live", 10, "the live stream")
            watcher.wait_attr("#stream-state", "data-last-event-id", lambda v: v != "", 5, "the snapshot's id")
            assert watcher.text("#bid-count") == "0"
            cut = relay.cut()
            assert cut >= 2, f"no connection to cut ({cut} sockets)"
            watcher.wait_attr("#stream-state", "data-state", lambda v: v == "reconnecting", 5, "the dropped stream noticed")
            watcher.screenshot("reconnecting")
            # Carol bids while the page is cut off; the page gets the bid when EventSource comes
            # back with Last-Event-ID (Chromium waits about 3 s), without a second snapshot.
            status, body = http("POST", f"{NODES[0]}/api/v1/auctions/{self.open_auction_id}/bids",
                                {"amount": "3.00"}, self.carol_token)
            assert status == 201, body
            watcher.wait_text("#current-price", lambda t: t == "3.00", 10, "the bid made while cut off")
            watcher.wait_attr("#stream-state", "data-state", lambda v: v == "live", 5, "live again")
            assert watcher.attr("#stream-state", "data-snapshots") == "1", \
                "the stream started over with a snapshot instead of resuming after Last-Event-ID"
            watcher.wait_text("#bid-history", lambda t: "3.00" in t, 2, "the bid in the history")
            watcher.screenshot("resumed")
            watcher.check_console()
        finally:
            watcher.quit()
            relay.close()

    # 13
    def phone_width(self):
        phone = Browser("phone", NODES[2], width=375, height=812)
        try:
            # Signed in (Carol), on an open auction: the header and the forms at 375 px.
            phone.get("#/login")
            phone.el("#login-form")
            phone.no_horizontal_scroll()
            phone.fill("#login-email", f"carol-{RUN}@example.com")
            phone.fill("#login-password", PASSWORD)
            phone.screenshot("login-375px")
            phone.click("#login-submit")
            phone.wait_text("#current-user", lambda t: t == "Carol", 10, "signed in")
            phone.go(f"#/auction/{self.open_auction_id}")
            phone.el("#bid-form")
            phone.wait(10).until(lambda d: d.execute_script(
                "const i = document.getElementById('main-image'); return i && i.complete && i.naturalWidth > 0;"))
            phone.no_horizontal_scroll()
            phone.screenshot("open-auction-375px")
            phone.get(f"#/auction/{self.auction_id}")
            phone.el("#end-banner")
            phone.wait(10).until(lambda d: d.execute_script(
                "const i = document.getElementById('main-image');"
                "return i && i.complete && i.naturalWidth > 0 &&"
                " document.querySelectorAll('#bid-history [data-testid=bid-row]').length === 3;"))
            inner = phone.driver.execute_script("return window.innerWidth")
            assert inner == 375, f"the window is {inner}px wide"
            phone.no_horizontal_scroll()
            phone.screenshot("auction-375px")
            phone.go("#/")
            phone.el("#search-form")
            phone.wait_text("#results-summary", lambda t: t != "Searching…", 5, "the listings")
            phone.no_horizontal_scroll()
            phone.screenshot("listings-375px")
            phone.go("#/sell")
            phone.el("#create-form")
            phone.no_horizontal_scroll()
            phone.screenshot("create-375px")
            phone.check_console()
        finally:
            phone.quit()

    # 14
    def sign_out(self):
        a = self.alice
        a.click("#logout-button")
        a.el("#nav-login")
        a.go(f"#/auction/{self.auction_id}")
        a.el("#end-banner")
        status, _ = http("GET", f"{NODES[0]}/api/v1/users/me")
        assert status == 401
        a.screenshot("signed-out")
        a.check_console()

    def close(self):
        for browser in (self.alice, self.bob):
            if browser:
                browser.quit()


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    # A time-out (SIGTERM from the runner) still closes the browsers, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    scenario = Scenario()
    steps = [
        scenario.every_node_serves_the_page,
        scenario.register_and_login,
        scenario.create_with_photo,
        scenario.second_session_on_another_node,
        scenario.too_low_bid_shows_the_minimum,
        scenario.bid_seen_by_the_other_session_within_a_second,
        scenario.outbid_through_the_api_on_a_third_node,
        scenario.late_bid_extends_the_countdown,
        scenario.the_end_shows_the_winner,
        scenario.the_lists,
        scenario.upload_error_on_the_create_page,
        scenario.buy_now,
        scenario.stream_resumes_after_a_dropped_connection,
        scenario.phone_width,
        scenario.sign_out,
    ]
    passed = failed = 0
    started = time.monotonic()
    try:
        for step in steps:
            name = step.__name__
            t0 = time.monotonic()
            try:
                step()
            except Exception as error:  # noqa: BLE001 - report and stop: later steps need this one
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {error}")
                traceback.print_exc()
                for browser in (scenario.alice, scenario.bob):
                    if browser:
                        try:
                            browser.screenshot(f"FAILED-{name}")
                            for entry in browser.driver.get_log("browser") + browser.console[-20:]:
                                print(f"  [{browser.name} console] {entry.get('level')} {entry.get('message', '')[:400]}")
                        except WebDriverException:
                            pass
                break
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.1f}s)")
    finally:
        scenario.close()
    skipped = len(steps) - passed - failed
    print(f"screenshots ({len(SHOTS)}) in {ARTIFACTS}")
    print(f"browser run took {time.monotonic() - started:.1f}s")
    print(f"browser: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
