"""Step 07's cookies in a real browser (headless Chromium, as in tests/test_browser.py): the front end in cookie
mode (frontend/?mode=cookies), and a hostile page (frontend/hostile.html) on another origin that tries POST
/logout with the visitor's cookies.

Three origins, as a learner would run them: the API on 127.0.0.1:<a>, the front end on 127.0.0.1:<b> (another
origin, the same *site*: cookies are not kept apart by port), and the hostile page either on 127.0.0.1:<c>
(same site, another origin: SameSite does not stop it, the CSRF check must) or on localhost:<c> (another site:
the SameSite=Lax cookies are not sent at all). Servers and browser are shared as in tests/test_browser.py: per step,
one API with the default settings and one with the CSRF check off (THE WRONG WAY), all signing with KEY.
"""
import json
import re
import time
from types import SimpleNamespace

import jwt
import pytest

from conftest import resign
from test_browser import (KEY, api_servers, fresh_browser, listed_users, log_part,  # noqa: F401 (fixtures)
                          page_servers, text, visible, wait_for)

JWT_COOKIES = {"access_token_cookie", "refresh_token_cookie"}
CSRF_COOKIES = {"csrf_access_token", "csrf_refresh_token"}
pytestmark = [pytest.mark.needs("chromium"), pytest.mark.xdist_group("browser")]  # as tests/test_browser.py


@pytest.fixture
def site(step, step_package, seeded_db_file, browser, page_servers, api_servers):  # noqa: F811 (fixtures imported above)
    """start(env) -> the API (the step under test, allowing the page's origin, signing with KEY, with these settings
    too), the front end's server, the hostile page's server, and log(): this test's part of the API's log."""
    page, hostile = page_servers("page"), page_servers("hostile")
    fresh_browser(browser, page.origin)

    def start(env=None):
        api = api_servers(step, seeded_db_file(step_package), {"CORS_ORIGINS": page.origin, "JWT_SECRET_KEY": KEY, **(env or {})})
        return SimpleNamespace(api=api, page=page, hostile=hostile, log=log_part(api))

    return start


def browser_cookies(driver):
    """Every cookie the browser holds, HttpOnly ones included (what the DevTools show): {(name, path): cookie}."""
    return {(c["name"], c["path"]): c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]}


def log_in(driver, s):
    driver.get(f"{s.page.origin}/?api={s.api.url}&mode=cookies")
    wait_for(driver, lambda: text(driver, "api-url") == s.api.url, what="the page's script start")
    driver.find_element("id", "password").send_keys("123456")
    driver.find_element("id", "login-button").click()
    wait_for(driver, lambda: listed_users(driver) == ["1 admin@gmail.com"], what="the users list")


def requests_seen(s):
    """[("GET /users", "200"), ...] from this test's part of the API's log (werkzeug colours the 4xx lines)."""
    return re.findall(r'"([A-Z]+ \S+) HTTP/1\.1" (\d{3})', re.sub(r"\x1b\[[0-9;]*m", "", s.log()))


def dataset(driver, name):
    return driver.find_element("tag name", "body").get_attribute(f"data-{name}")


@pytest.mark.since("step07_cookies")
def test_cookie_login_lists_the_users_and_no_script_sees_the_jwt(browser, site):
    s = site()
    log_in(browser, s)
    assert text(browser, "identity") == "admin@gmail.com"
    held = browser_cookies(browser)
    assert {name for name, _ in held} == JWT_COOKIES | CSRF_COOKIES
    assert {path for name, path in held if name == "refresh_token_cookie"} == {"/refresh", "/logout"}
    assert all(c["httpOnly"] is (c["name"] in JWT_COOKIES) and c["sameSite"] == "Lax" for c in held.values())
    seen = browser.execute_script("return document.cookie")
    assert "csrf_access_token=" in seen and "csrf_refresh_token=" in seen
    assert "access_token_cookie" not in seen and "refresh_token_cookie" not in seen and "eyJ" not in seen
    storage = browser.execute_script("return [JSON.stringify(sessionStorage), localStorage.length]")
    assert storage == ['{"userid":"1"}', 0]  # no token in storage
    browser.refresh()  # a reload: the cookies are still there, and still accepted
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list after a reload")


def swap_access_cookie(driver, s, exp):
    """The access cookie replaced by one with the same claims but this exp, signed as the server signs (KEY)."""
    cookie = browser_cookies(driver)[("access_token_cookie", "/")]
    claims = {**jwt.decode(cookie["value"], options={"verify_signature": False}), "exp": exp}
    kept = {k: cookie[k] for k in ("name", "path", "httpOnly", "sameSite")}
    driver.execute_cdp_cmd("Network.setCookie", {**kept, "url": s.api.url, "value": resign(cookie["value"], claims, KEY)})
    return browser_cookies(driver)[("access_token_cookie", "/")]["value"]


@pytest.mark.since("step07_cookies")
def test_implicit_refresh_is_seen_by_the_page(browser, site):
    s = site()
    log_in(browser, s)
    # The default IMPLICIT_REFRESH_WITHIN, 5 min: the access cookie is swapped for one with 2 min left, which the
    # answer to the next request renews (the server's own 15-min cookie would not be, and no test waits 10 min).
    before = swap_access_cookie(browser, s, int(time.time()) + 120)
    renewals = int(dataset(browser, "renewals") or 0)
    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: int(dataset(browser, "renewals") or 0) > renewals, what="a renewed access cookie")
    assert browser_cookies(browser)[("access_token_cookie", "/")]["value"] != before
    assert "(implicit refresh)" in text(browser, "message")
    assert "POST /refresh" not in s.log()  # nobody called /refresh: the answer to GET /users carried it


@pytest.mark.since("step07_cookies")
def test_an_expired_access_cookie_is_renewed_through_refresh(browser, site):
    # Not a short-lived token waited out: the token /refresh gives would be as short-lived, and a loaded machine
    # could let it lapse before the retried GET. The access cookie is swapped for the same claims, expired.
    s = site()
    log_in(browser, s)
    swap_access_cookie(browser, s, int(time.time()) - 60)
    browser.find_element("id", "reload-users").click()
    wait_for(browser, lambda: dataset(browser, "refreshed") == "1", what="POST /refresh")
    wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the users list")
    seen = requests_seen(s)
    assert ("GET /users", "401") in seen and ("POST /refresh", "200") in seen, seen


@pytest.mark.since("step07_cookies")
def test_logout_clears_every_cookie(browser, site):
    s = site()
    log_in(browser, s)
    browser.find_element("id", "logout").click()
    wait_for(browser, lambda: dataset(browser, "logout") == "done", what="the answer to POST /logout")
    assert text(browser, "message") == "Logged out: the server revoked both tokens and removed the cookies."
    assert browser_cookies(browser) == {} and browser.execute_script("return document.cookie") == ""
    assert visible(browser, "login") and ("POST /logout", "200") in requests_seen(s)


# The attack -------------------------------------------------------------------------------------------

# Another site with CSRF protection on is not a case of its own: SameSite stops it with the protection off (below),
# before any CSRF check. Each case is a login and two page loads in the browser.
ATTACKS = [  # (where the hostile page is, CSRF protection, what the form's POST /logout is answered)
    pytest.param("127.0.0.1", "on", {"code": 213, "message": "CSRF tokens do not match"}, id="same-site-CSRF-check-stops-it"),
    pytest.param("127.0.0.1", "off", {"code": 200, "message": "logged out"}, id="same-site-csrf-off-THE-WRONG-WAY-succeeds"),
    pytest.param("localhost", "off", {"code": 203, "message": "missing token"}, id="another-site-csrf-off-SameSite-still-stops-it"),
]


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("attack", ["form", "fetch"])
@pytest.mark.parametrize("host, protection, form_answer", ATTACKS)
def test_a_hostile_page_posts_with_the_visitors_cookies(browser, site, attack, host, protection, form_answer):
    s = site(env={} if protection == "on" else {"JWT_COOKIE_CSRF_PROTECT": "false"})  # on: the default
    log_in(browser, s)
    browser.get(f"http://{host}:{s.hostile.port}/hostile.html?api={s.api.url}&attack={attack}")
    if attack == "form":  # the tab has navigated to the API's answer
        wait_for(browser, lambda: browser.current_url.startswith(s.api.url), what="the form's POST")
        assert json.loads(browser.find_element("tag name", "body").text) == form_answer
    else:  # fetch: the answer is hidden from the page (CORS), the API's log says what happened
        wait_for(browser, lambda: dataset(browser, "sent") == "yes", what="the fetch")
        wait_for(browser, lambda: "POST /logout" in s.log(), what="the fetch reaching the API")
    succeeded = form_answer["code"] == 200
    assert [r for r in requests_seen(s) if r[0] == "POST /logout"] == [("POST /logout", "200" if succeeded else "401")]
    # The visitor's own tab: still logged in, unless the attack worked.
    browser.get(f"{s.page.origin}/?api={s.api.url}&mode=cookies")
    if succeeded:
        assert {name for name, _ in browser_cookies(browser)} == set()  # logged out by another page
    else:
        wait_for(browser, lambda: listed_users(browser) == ["1 admin@gmail.com"], what="the visitor's session")
