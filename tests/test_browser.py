"""The front end (frontend/) in headless Chromium driven by Selenium, served from another origin than the API: CORS for
real. The API, the front end and a hostile page (frontend/hostile.html, posting to /logout from the front end's site or
from another) are served from threads of this process. To replace frontend/screenshot.png (ports 5000, 8000 free):

    UPDATE_SCREENSHOT=1 uv run pytest tests/test_browser.py -k log_in
"""
import contextlib
import json
import os
import secrets
import shutil
import time
from types import SimpleNamespace

import jwt
import pytest
from werkzeug.exceptions import NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware

import needs
from conftest import sign_as
from tutorial.live import AppServer, build_app
from tutorial.steps import ROOT

FRONTEND = ROOT / "frontend"
FINISHED = "step06_revoke"  # the last step whose login answers the token (header mode); the cookie tests follow below
UPDATE_SCREENSHOT = bool(os.environ.get("UPDATE_SCREENSHOT"))
KEY = secrets.token_hex(32)  # the API's JWT_SECRET_KEY (step09 on, it signs with the KEYS_DIR's key)
JWT_COOKIES = {"access_token_cookie", "refresh_token_cookie"}
# One Chromium for the module, so one xdist worker (--dist loadgroup); carried forward to the finished step only.
pytestmark = [pytest.mark.needs("chromium"), pytest.mark.xdist_group("browser"), pytest.mark.ends_only]


@pytest.fixture(scope="module")
def servers():
    """get(name, make_app, port=0) -> a WSGI app served from a thread (its log: .requests), started once a module."""
    started = {}
    with contextlib.ExitStack() as servers:
        def get(name, make_app, port=0):
            if name not in started:
                started[name] = servers.enter_context(AppServer(make_app(), port))
            return started[name]

        yield get


@pytest.fixture(scope="module")
def browser(tmp_path_factory):  # one Chromium for the module; each test starts clean (site)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = needs.found("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    # One renderer process for the tests' sites, not one per site and page load (~0.1 s of CPU each): cookies,
    # SameSite and CORS are the browser's network service's, the same either way (--disable-site-isolation-trials).
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-sync", "--disable-background-networking", "--disable-component-update",
                     "--disable-site-isolation-trials", "--window-size=1000,1040", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CORS errors are told
    driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    yield driver
    driver.quit()


@pytest.fixture
def step():  # the header-mode tests' step; step_package (tests/conftest.py) imports it with cheap password hashes
    return FINISHED


@pytest.fixture
def site(step, step_package, seeded_db_file, browser, servers, tmp_path_factory):
    """site(**env) -> the API (the step on a copy of its seed database, signing with KEY, allowing the front end's
    origin, with these settings too; its log emptied), the front end's server and the hostile page's."""
    files = lambda: SharedDataMiddleware(NotFound(), {"/": str(FRONTEND)})  # noqa: E731
    page, hostile = servers("page", files, 8000 if UPDATE_SCREENSHOT else 0), servers("hostile", files)
    browser.get("about:blank")  # the previous test's page sends nothing more; its cookies and storage are gone
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": page.url, "storageTypes": "all"})

    def start(**env):
        env = {"JWT_SECRET_KEY": KEY, **({} if UPDATE_SCREENSHOT else {"CORS_ORIGINS": page.url}), **env}

        def make_app():
            db_file = tmp_path_factory.mktemp(step) / "app.sqlite"
            shutil.copyfile(seeded_db_file(step_package), db_file)
            return build_app(step, db_file, env=env)

        api = servers((step, *sorted(env.items())), make_app, 5000 if UPDATE_SCREENSHOT else 0)
        api.requests.clear()  # this test's requests only
        return SimpleNamespace(api=api, page=page, hostile=hostile)

    return start


def wait_for(driver, condition, what, timeout=10):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # The page reacts within tens of ms: looking every 20 ms (a WebDriver command) saves ~50 ms a wait over 100 ms.
        return WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: condition())
    except TimeoutException:  # any other error is the condition's own, and says so itself
        seen = driver.execute_script(  # what a rare failure needs to be understood afterwards
            "return [document.getElementById('message').textContent, {...document.body.dataset},"
            " [...document.querySelectorAll('#users tbody tr')].map((row) => row.textContent)]")
        raise AssertionError(f"{what} did not happen within {timeout} s; message, markers, users: {seen}") from None


def text(driver, element_id):
    return driver.find_element("id", element_id).text


def visible(driver, element_id):
    return driver.find_element("id", element_id).is_displayed()


def dataset(driver, name):
    return driver.find_element("tag name", "body").get_attribute(f"data-{name}")


def session_storage(driver, key):
    return driver.execute_script("return window.sessionStorage.getItem(arguments[0])", key)


def see_users(driver, what="the users list"):
    # The rows as shown ("" when hidden), read at once: the page may replace them meanwhile.
    wait_for(driver, lambda: driver.execute_script(
        "return [...document.querySelectorAll('#users tbody tr')]"
        ".map((row) => row.checkVisibility() ? [...row.cells].map((c) => c.innerText).join(' ') : '')")
        == ["1 admin@gmail.com"], what)


def log_in(driver, s, origin=None, mode=""):
    driver.get(f"{origin or s.page.url}/index.html?api={s.api.url}{mode}")
    wait_for(driver, lambda: text(driver, "api-url") == s.api.url, "the page's script start")
    driver.find_element("id", "password").send_keys("123456")
    driver.find_element("id", "login-button").click()


def with_exp(s, token, exp):  # the token's claims with this exp, signed as the API signs
    return sign_as(s.api.app, {**jwt.decode(token, options={"verify_signature": False}), "exp": exp})


def logouts(s):
    return [status for request, status in s.api.requests if request == "POST /logout"]


def test_log_in_see_the_users_and_log_out(browser, site, tmp_path):
    s = site()
    log_in(browser, s)
    see_users(browser)
    token = text(browser, "token")
    assert token.count(".") == 2 and token == session_storage(browser, "token")
    assert browser.execute_script("return window.localStorage.length") == 0  # sessionStorage only
    assert text(browser, "identity") == "admin@gmail.com"
    assert '"sub": "admin@gmail.com"' in text(browser, "claims")
    countdown = text(browser, "countdown")  # read once: it ticks every second ("in 15 min 0 s", then "in 14 min 59 s")
    assert countdown.startswith(("in 14 min", "in 15 min")), countdown
    assert not visible(browser, "login") and not visible(browser, "message")
    assert browser.find_element("id", "password").get_attribute("value") == ""  # not kept in the form
    assert browser.save_screenshot(str(tmp_path / "after-login.png"))
    if UPDATE_SCREENSHOT:
        shutil.copyfile(tmp_path / "after-login.png", FRONTEND / "screenshot.png")

    browser.refresh()  # a reload of the tab: the token is still in sessionStorage
    see_users(browser, "the users list after a reload")
    assert text(browser, "token") == token

    browser.find_element("id", "logout").click()
    wait_for(browser, lambda: dataset(browser, "logout") == "done", "the answers to POST /logout")
    assert visible(browser, "login")
    assert session_storage(browser, "token") is None and session_storage(browser, "refresh_token") is None
    # The server revokes the access and the refresh token: POST /logout, once with each.
    assert logouts(s) == [200, 200]
    assert text(browser, "message") == "Logged out: this page forgot the token, and the server revoked 2 of them."


def test_an_expired_token_gets_the_articles_message(browser, site, tmp_path):
    # Not a short-lived token waited out: a loaded machine could let it lapse before the first GET /users. The
    # stored token is swapped for the same claims, expired, and the page shows it as it shows a token after a login.
    log_in(browser, s := site())
    see_users(browser)
    expired = with_exp(s, session_storage(browser, "token"), int(time.time()) - 60)
    browser.execute_script("sessionStorage.setItem('token', arguments[0]); showSession()", expired)
    wait_for(browser, lambda: text(browser, "countdown").startswith("expired"), "the countdown", timeout=5)

    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: visible(browser, "message"), "an answer")
    browser.save_screenshot(str(tmp_path / "expired.png"))  # for a look, when the test fails
    assert text(browser, "message") == "token expired (code 201): log in again."  # the article's message
    assert visible(browser, "login") and not visible(browser, "session")
    assert session_storage(browser, "token") is None


def test_a_page_from_an_origin_not_allowed_is_blocked_by_the_browser(browser, site, tmp_path):
    s = site()
    origin = s.hostile.url  # the API allows the front end's port only
    browser.get_log("browser")  # empty the console
    log_in(browser, s, origin)
    wait_for(browser, lambda: visible(browser, "message"), "an answer")
    browser.save_screenshot(str(tmp_path / "blocked.png"))

    assert text(browser, "message").startswith("Network or CORS error")
    assert f"CORS_ORIGINS={origin}" in text(browser, "message")
    assert not visible(browser, "session") and session_storage(browser, "token") is None
    console = "\n".join(entry["message"] for entry in browser.get_log("browser"))
    assert f"from origin '{origin}' has been blocked by CORS policy" in console
    # The browser asked first (the preflight: a JSON body is not a "simple" request), was not allowed,
    # and never sent the login itself.
    assert ("OPTIONS /login", 200) in s.api.requests and "POST /login" not in dict(s.api.requests)


# Step 07's cookies ---------------------------------------------------------------------------------------
def browser_cookies(driver):
    """Every cookie the browser holds, HttpOnly ones included (what the DevTools show): {(name, path): cookie}."""
    return {(c["name"], c["path"]): c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]}


def swap_access_cookie(driver, s, exp):
    """The access cookie replaced by one with the same claims but this exp."""
    cookie = browser_cookies(driver)[("access_token_cookie", "/")]
    kept = {k: cookie[k] for k in ("name", "path", "httpOnly", "sameSite")}
    driver.execute_cdp_cmd("Network.setCookie", {**kept, "url": s.api.url, "value": with_exp(s, cookie["value"], exp)})
    return browser_cookies(driver)[("access_token_cookie", "/")]["value"]


@pytest.mark.since("step07_cookies")
def test_a_cookie_session_from_login_to_logout(browser, site):
    # No script sees the JWT; the access cookie is renewed implicitly and, expired, through /refresh; one login (costly)
    s = site()
    log_in(browser, s, mode="&mode=cookies")
    see_users(browser)
    assert text(browser, "identity") == "admin@gmail.com"
    held = browser_cookies(browser)
    assert {name for name, _ in held} == JWT_COOKIES | {"csrf_access_token", "csrf_refresh_token"}
    assert {path for name, path in held if name == "refresh_token_cookie"} == {"/refresh", "/logout"}
    assert all(c["httpOnly"] is (c["name"] in JWT_COOKIES) and c["sameSite"] == "Lax" for c in held.values())
    seen = browser.execute_script("return document.cookie")
    assert "csrf_access_token=" in seen and "csrf_refresh_token=" in seen
    assert "access_token_cookie" not in seen and "refresh_token_cookie" not in seen and "eyJ" not in seen
    storage = browser.execute_script("return [JSON.stringify(sessionStorage), localStorage.length]")
    assert storage == ['{"userid":"1"}', 0]  # no token in storage
    browser.refresh()  # a reload: the cookies are still there, and still accepted
    see_users(browser, "the users list after a reload")

    # Implicit refresh, within the default IMPLICIT_REFRESH_WITHIN, 5 min: the access cookie is swapped for one with
    # 2 min left, which the answer to the next request renews (the server's own 15-min cookie would not be).
    before = swap_access_cookie(browser, s, int(time.time()) + 120)
    renewals = int(dataset(browser, "renewals") or 0)
    s.api.requests.clear()
    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: int(dataset(browser, "renewals") or 0) > renewals, "a renewed access cookie")
    assert browser_cookies(browser)[("access_token_cookie", "/")]["value"] != before
    assert "(implicit refresh)" in text(browser, "message")
    assert "POST /refresh" not in dict(s.api.requests)  # nobody called /refresh: the answer to GET /users carried it

    # Expired: not a short-lived token waited out (the token /refresh gives would be as short-lived, and a loaded
    # machine could let it lapse before the retried GET), the access cookie swapped for the same claims, expired.
    swap_access_cookie(browser, s, int(time.time()) - 60)
    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: dataset(browser, "refreshed") == "1", "POST /refresh")
    see_users(browser)
    assert ("GET /users", 401) in s.api.requests and ("POST /refresh", 200) in s.api.requests, s.api.requests

    browser.find_element("id", "logout").click()
    wait_for(browser, lambda: dataset(browser, "logout") == "done", "the answer to POST /logout")
    assert text(browser, "message") == "Logged out: the server revoked both tokens and removed the cookies."
    assert browser_cookies(browser) == {} and browser.execute_script("return document.cookie") == ""
    assert visible(browser, "login") and logouts(s) == [200]


# The attack -------------------------------------------------------------------------------------------
# Another site with CSRF protection on is no case of its own: SameSite stops it before any CSRF check (the last case).
ATTACKS = {  # id: (where the hostile page is, CSRF protection, what the form's POST /logout is answered)
    "same-site-CSRF-check-stops-it": ("127.0.0.1", "on", {"code": 213, "message": "CSRF tokens do not match"}),
    "same-site-csrf-off-THE-WRONG-WAY-succeeds": ("127.0.0.1", "off", {"code": 200, "message": "logged out"}),
    "another-site-csrf-off-SameSite-still-stops-it": ("localhost", "off", {"code": 203, "message": "missing token"}),
}


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("host, protection, form_answer", ATTACKS.values(), ids=ATTACKS)
def test_a_hostile_page_posts_with_the_visitors_cookies(browser, site, host, protection, form_answer):
    s = site(**({} if protection == "on" else {"JWT_COOKIE_CSRF_PROTECT": "false"}))  # on: the default
    succeeded = form_answer["code"] == 200
    for attack in ("form", "fetch"):  # an auto-submitted form, then a no-cors fetch
        if attack == "form" or succeeded:  # a successful attack logged the visitor out
            log_in(browser, s, mode="&mode=cookies")
            see_users(browser)
        s.api.requests.clear()
        browser.get(f"http://{host}:{s.hostile.port}/hostile.html?api={s.api.url}&attack={attack}")
        if attack == "form":  # the tab has navigated to the API's answer
            wait_for(browser, lambda: browser.current_url.startswith(s.api.url), "the form's POST")
            assert json.loads(browser.find_element("tag name", "body").text) == form_answer
        else:  # fetch: the answer is hidden from the page (CORS), the API's log says what happened
            wait_for(browser, lambda: dataset(browser, "sent") == "yes" and logouts(s), "the fetch reaching the API")
        assert logouts(s) == [200 if succeeded else 401], attack
        assert (browser_cookies(browser) == {}) is succeeded, attack  # logged out by another page, or not
    if not succeeded:  # the visitor's own tab: still logged in
        browser.get(f"{s.page.url}/index.html?api={s.api.url}&mode=cookies")
        see_users(browser, "the visitor's session")
