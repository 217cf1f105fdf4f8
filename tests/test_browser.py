"""The front end (frontend/) in a real browser, served from another origin than the API: CORS for real.

Headless Chromium (Debian: `apt-get install chromium chromium-driver`), driven by Selenium through the
system's chromedriver; nothing is downloaded. Both are found on PATH (chromium, chromium-browser, google-chrome,
chrome; chromedriver), or where the variables CHROMIUM and CHROMEDRIVER say. Without them these tests are
skipped, and fail under CI=true (tests/needs.py). The API is
the last step whose login answers the token, started with `flask run` and its settings from the environment;
the page is served by `python -m http.server`, on a port of its own. Starting them was most of a test's cost: the
page server serves the whole module, an API every test of the module with the same step and settings, and one
Chromium (tests/conftest.py) both modules. Each test starts with a clean browser (no cookies, no storage), logs in afresh, and reads
only its own part of the API's log.

The README's screenshot is taken by test_log_in_see_the_users_and_log_out; a normal run writes it to a
temporary folder only. To replace frontend/screenshot.png (with the README's ports, 5000 and 8000, which
must be free, and the development CORS_ORIGINS):

    UPDATE_SCREENSHOT=1 uv run pytest tests/test_browser.py -k log_in
"""
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from conftest import resign
from tutorial.live import LiveServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "frontend"
SCREENSHOT = FRONTEND / "screenshot.png"
FINISHED = "step06_revoke"  # the last step whose login answers the token (header mode); cookies: test_browser_cookies.py
UPDATE_SCREENSHOT = bool(os.environ.get("UPDATE_SCREENSHOT"))
KEY = secrets.token_hex(32)  # the servers sign with it (step09 on: the session's KEYS_DIR): a test can make an expired token
# One browser for both modules: under pytest-xdist the group's tests go to one worker (--dist loadgroup).
pytestmark = [pytest.mark.needs("chromium"), pytest.mark.xdist_group("browser")]


class PageServer:
    """`python -m http.server` serving frontend/ on 127.0.0.1: the page's own origin. On port 0 unless one is
    asked for: the server binds a free port itself and says which (no other process can take it meanwhile)."""

    def __init__(self, port=0, log=None):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "http.server", str(free_port(port) if port else 0), "--bind", "127.0.0.1",
                 "--directory", str(FRONTEND)], stdout=out, stderr=subprocess.STDOUT,
            )
        self.port = port or self._announced_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        wait_for_port(self.port, self.proc, 10, lambda: f"python -m http.server {self.port} did not start")

    def _announced_port(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not (found := re.search(r"Serving HTTP on \S+ port (\d+)", Path(self.log).read_text(encoding="utf-8"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"python -m http.server did not start:\n{Path(self.log).read_text(encoding='utf-8')}")
            time.sleep(0.05)
        return int(found[1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page_servers(tmp_path_factory):
    """get(name, port=0) -> the module's page server of that name (the front end's, a hostile page's), started once."""
    started = {}

    def get(name, port=0):
        if name not in started:
            started[name] = PageServer(port, log=tmp_path_factory.mktemp(name) / "page.log")
        return started[name]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def api_servers(tmp_path_factory):
    """get(step, seed, env, port=None) -> the module's API for this step and these settings, started once on a copy
    of the seed database (what init-db makes): tests with the same settings share it, each logging in afresh."""
    started = {}

    def get(step, seed, env, port=None):
        key = (step, tuple(sorted(env.items())))
        if key not in started:
            db_file = tmp_path_factory.mktemp(step) / "app.sqlite"
            shutil.copyfile(seed, db_file)
            started[key] = LiveServer(step, db_file, env=env, port=port)
        return started[key].wait_until_ready()

    yield get
    for server in started.values():
        server.stop()


def fresh_browser(driver, *origins):
    """No page open, no cookie, no storage left from the module's previous test."""
    driver.get("about:blank")  # the previous test's page sends nothing more
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    for origin in origins:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})


def log_part(api):
    """() -> what the API logged since now: this test's requests, not those of earlier tests on the same server."""
    start = len(api.output())
    return lambda: api.output()[start:]


@pytest.fixture
def step():  # the step_package fixture (tests/conftest.py) imports it, with cheap password hashes
    return FINISHED


@pytest.fixture
def site(browser, step_package, seeded_db_file, page_servers, api_servers):
    """The API (FINISHED, signing with KEY), the front end's server, and log(): this test's part of the API's log.
    The API allows the page's origin; with UPDATE_SCREENSHOT, the README's setup: flask run's port 5000, the page
    on 8000, the development CORS_ORIGINS."""
    page = page_servers("page", 8000 if UPDATE_SCREENSHOT else 0)
    fresh_browser(browser, page.origin)
    env = {"JWT_SECRET_KEY": KEY, **({} if UPDATE_SCREENSHOT else {"CORS_ORIGINS": page.origin})}
    api = api_servers(FINISHED, seeded_db_file(step_package), env, port=5000 if UPDATE_SCREENSHOT else None)
    return SimpleNamespace(api=api, page=page, log=log_part(api))


def wait_for(driver, condition, timeout=10, what="the page"):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # The page reacts within tens of ms: looking every 20 ms (a WebDriver command) saves ~50 ms a wait over 100 ms.
        return WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: condition())
    except TimeoutException:  # any other error is the condition's own, and says so itself
        message = driver.find_element("id", "message").text
        # What a rare failure needs to be understood afterwards: the rows as the DOM holds them, the page's markers.
        rows, marks = driver.execute_script(
            "return [[...document.querySelectorAll('#users tbody tr')].map((r) => r.textContent), {...document.body.dataset}]")
        raise AssertionError(f"{what} did not happen within {timeout} s; the page says: {message!r}; "
                             f"users rows {rows}, markers {marks}") from None


def text(driver, element_id):
    return driver.find_element("id", element_id).text


def visible(driver, element_id):
    return driver.find_element("id", element_id).is_displayed()


def log_in(driver, origin, api, password="123456"):
    driver.get(f"{origin}/?api={api.url}")
    wait_for(driver, lambda: text(driver, "api-url") == api.url, what="the page's script start")
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-button").click()


def listed_users(driver):
    """The rows as shown ("1 admin@gmail.com"; "" when hidden), read at once: the page may replace them meanwhile."""
    return driver.execute_script("return [...document.querySelectorAll('#users tbody tr')]"
                                 ".map((row) => row.checkVisibility() ? [...row.cells].map((c) => c.innerText).join(' ') : '')")


def session_storage(driver, key):
    return driver.execute_script("return window.sessionStorage.getItem(arguments[0])", key)


def test_log_in_see_the_users_and_log_out(browser, site, tmp_path):
    api = site.api
    log_in(browser, site.page.origin, api)
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list")

    token = text(browser, "token")
    assert token.count(".") == 2 and token == session_storage(browser, "token")
    assert browser.execute_script("return window.localStorage.length") == 0  # sessionStorage only
    assert text(browser, "identity") == "admin@gmail.com"
    assert '"sub": "admin@gmail.com"' in text(browser, "claims")
    countdown = text(browser, "countdown")  # read once: it ticks every second ("in 15 min 0 s", then "in 14 min 59 s")
    assert countdown.startswith(("in 14 min", "in 15 min")), countdown
    assert not visible(browser, "login") and not visible(browser, "message")

    assert browser.find_element("id", "password").get_attribute("value") == ""  # not kept in the form
    shot = tmp_path / "after-login.png"
    assert browser.save_screenshot(str(shot))
    if UPDATE_SCREENSHOT:
        shutil.copyfile(shot, SCREENSHOT)

    browser.refresh()  # a reload of the tab: the token is still in sessionStorage
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list after a reload")
    assert text(browser, "token") == token

    browser.find_element("id", "logout").click()
    wait_for(browser, lambda: visible(browser, "login"), what="the login form after logging out")
    assert session_storage(browser, "token") is None and session_storage(browser, "refresh_token") is None
    wait_for(browser, lambda: browser.find_element("tag name", "body").get_attribute("data-logout") == "done",
             what="the answers to POST /logout")
    # From step06 on the server revokes the access and the refresh token (POST /logout, once with each);
    # before, /logout does not exist and the page does not depend on it.
    revoked = site.log().count('"POST /logout HTTP/1.1" 200')
    assert text(browser, "message") == "Logged out: this page forgot the token" + (
        f", and the server revoked {revoked} of them." if revoked else "."
    )


def test_an_expired_token_gets_the_articles_message(browser, site, tmp_path):
    # Not a short-lived token waited out: a loaded machine could let it lapse before the first GET /users. The
    # stored token is swapped for the same claims, expired, and the page shows it as it shows a token after a login.
    log_in(browser, site.page.origin, site.api)
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list")
    token = session_storage(browser, "token")
    claims = {**jwt.decode(token, options={"verify_signature": False}), "exp": int(time.time()) - 60}
    browser.execute_script("sessionStorage.setItem('token', arguments[0]); showSession()", resign(token, claims, KEY))
    wait_for(browser, lambda: text(browser, "countdown").startswith("expired"), timeout=5, what="the countdown")

    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: visible(browser, "message"), what="an answer")
    browser.save_screenshot(str(tmp_path / "expired.png"))  # for a look, when the test fails
    assert text(browser, "message") == "token expired (code 201): log in again."  # the article's message
    assert visible(browser, "login") and not visible(browser, "session")
    assert session_storage(browser, "token") is None


def test_a_page_from_an_origin_not_allowed_is_blocked_by_the_browser(browser, site, page_servers, tmp_path):
    """The API allows the page's own port only; the same page comes from another port."""
    origin = page_servers("other-port").origin
    browser.get_log("browser")  # empty the console
    log_in(browser, origin, site.api)
    wait_for(browser, lambda: visible(browser, "message"), what="an answer")
    browser.save_screenshot(str(tmp_path / "blocked.png"))

    assert text(browser, "message").startswith("Network or CORS error")
    assert f"CORS_ORIGINS={origin}" in text(browser, "message")
    assert not visible(browser, "session") and session_storage(browser, "token") is None
    console = "\n".join(entry["message"] for entry in browser.get_log("browser"))
    assert f"from origin '{origin}' has been blocked by CORS policy" in console
    # The browser asked first (the preflight: a JSON body is not a "simple" request), was not allowed,
    # and never sent the login itself.
    log = site.log()
    assert '"OPTIONS /login HTTP/1.1" 200' in log and "POST /login" not in log
