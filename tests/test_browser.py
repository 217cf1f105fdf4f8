"""The front end (frontend/) in a real browser, served from another origin than the API: CORS for real.

Headless Chromium (Debian: `apt-get install chromium chromium-driver`), driven by Selenium through the
system's chromedriver; nothing is downloaded. Both are found on PATH (chromium, chromium-browser, google-chrome,
chrome; chromedriver), or where the variables CHROMIUM and CHROMEDRIVER say. Without them these tests are
skipped, and fail under CI=true (tests/needs.py). The API is
the finished step (the highest stepNN), started with `flask run` and its settings from the environment;
the page is served by `python -m http.server`, on a port of its own.

The README's screenshot is taken by test_log_in_see_the_users_and_log_out; a normal run writes it to a
temporary folder only. To replace frontend/screenshot.png (with the README's ports, 5000 and 8000, which
must be free, and the development CORS_ORIGINS):

    UPDATE_SCREENSHOT=1 uv run pytest tests/test_browser.py -k log_in
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import needs
from tutorial.live import LiveServer, flask_cli, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "frontend"
SCREENSHOT = FRONTEND / "screenshot.png"
FINISHED = "step06_revoke"  # the last step whose login answers the token (header mode); cookies: test_browser_cookies.py
UPDATE_SCREENSHOT = bool(os.environ.get("UPDATE_SCREENSHOT"))
# One browser per module: under pytest-xdist the module's tests go to one worker (--dist loadgroup).
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
def browser(tmp_path_factory):
    chromium, chromedriver = needs.found("chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1000,1040", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CORS errors are told
    driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    yield driver
    driver.quit()


@pytest.fixture
def servers(tmp_path):
    """start(...) -> (API server, page server): the page first, so that the API may allow its origin."""
    started = []

    def start(allow_page=True, env=None, api_port=None, page_port=0):
        """allow_page: CORS_ORIGINS names the page's origin; else the development default (port 8000)."""
        page = PageServer(page_port, log=tmp_path / f"page-{len(started)}.log")
        started.append(page)
        env = {**(env or {}), **({"CORS_ORIGINS": page.origin} if allow_page else {})}
        db_file = tmp_path / "app.sqlite"
        flask_cli(FINISHED, db_file, "init-db")
        api = LiveServer(FINISHED, db_file, env=env, port=api_port)
        started.append(api)
        return api.wait_until_ready(), page

    yield start
    for server in reversed(started):
        server.stop()


def wait_for(driver, condition, timeout=10, what="the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition())
    except Exception:
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


def log_in(driver, page, api, password="123456"):
    driver.get(f"{page.origin}/?api={api.url}")
    wait_for(driver, lambda: text(driver, "api-url") == api.url, what="the page's script start")
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-button").click()


def listed_users(driver):
    return [row.text for row in driver.find_elements("css selector", "#users tbody tr")]


def session_storage(driver, key):
    return driver.execute_script("return window.sessionStorage.getItem(arguments[0])", key)


def test_log_in_see_the_users_and_log_out(browser, servers, tmp_path):
    if UPDATE_SCREENSHOT:  # the README's setup: flask run's port 5000, the page on 8000, the default CORS_ORIGINS
        api, page = servers(allow_page=False, api_port=5000, page_port=8000)
    else:
        api, page = servers()
    log_in(browser, page, api)
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list")

    token = text(browser, "token")
    assert token.count(".") == 2 and token == session_storage(browser, "token")
    assert browser.execute_script("return window.localStorage.length") == 0  # sessionStorage only
    assert text(browser, "identity") == "admin@gmail.com"
    assert '"sub": "admin@gmail.com"' in text(browser, "claims")
    assert text(browser, "countdown").startswith("in 14 min") or text(browser, "countdown").startswith("in 15 min")
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
    revoked = api.output().count('"POST /logout HTTP/1.1" 200')
    assert text(browser, "message") == "Logged out: this page forgot the token" + (
        f", and the server revoked {revoked} of them." if revoked else "."
    )


def test_an_expired_token_gets_the_articles_message(browser, servers, tmp_path):
    api, page = servers(env={"JWT_ACCESS_TOKEN_EXPIRES": "2"})
    log_in(browser, page, api)
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list")
    wait_for(browser, lambda: text(browser, "countdown").startswith("expired"), timeout=5, what="the countdown")

    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: visible(browser, "message"), what="an answer")
    browser.save_screenshot(str(tmp_path / "expired.png"))  # for a look, when the test fails
    assert text(browser, "message") == "token expired (code 201): log in again."  # the article's message
    assert visible(browser, "login") and not visible(browser, "session")
    assert session_storage(browser, "token") is None


def test_a_page_from_an_origin_not_allowed_is_blocked_by_the_browser(browser, servers, tmp_path):
    """The API allows its development default (port 8000) only; the page comes from another port."""
    api, page = servers(allow_page=False)
    assert page.port != 8000
    browser.get_log("browser")  # empty the console
    log_in(browser, page, api)
    wait_for(browser, lambda: visible(browser, "message"), what="an answer")
    browser.save_screenshot(str(tmp_path / "blocked.png"))

    assert text(browser, "message").startswith("Network or CORS error")
    assert f"CORS_ORIGINS={page.origin}" in text(browser, "message")
    assert not visible(browser, "session") and session_storage(browser, "token") is None
    console = "\n".join(entry["message"] for entry in browser.get_log("browser"))
    assert f"from origin '{page.origin}' has been blocked by CORS policy" in console
    # The browser asked first (the preflight: a JSON body is not a "simple" request), was not allowed,
    # and never sent the login itself.
    log = api.output()
    assert '"OPTIONS /login HTTP/1.1" 200' in log and "POST /login" not in log
