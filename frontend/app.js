// The front end of the article's API, on an origin of its own: log in, show the token, list the users.
// Plain JavaScript and fetch, no build step. Served by `python -m http.server 8000 --directory frontend`,
// it calls the API at http://127.0.0.1:5000, another origin: the API must allow this one (CORS_ORIGINS).
"use strict";

// Where the API is: ?api=http://127.0.0.1:5001 in the page's address, else flask run's default.
const PARAMS = new URLSearchParams(location.search);
const API = (PARAMS.get("api") || "http://127.0.0.1:5000").replace(/\/+$/, "");
// ?mode=cookies (step07 on): the tokens live in HttpOnly cookies that this page never sees. Every fetch says
// credentials: "include", and each POST copies a readable csrf_* cookie into the X-CSRF-TOKEN header.
const COOKIES = PARAMS.get("mode") === "cookies";

// The tokens live in sessionStorage: they survive a reload of this tab, and are gone when the tab closes;
// other tabs do not see them. localStorage would keep them for good, for every page of this origin.
// Script injected into the page (XSS) could read either: this page writes what it receives with
// textContent only, never as HTML.
const store = window.sessionStorage;

const $ = (id) => document.getElementById(id);
let countdownTimer = null;

class NetworkError extends Error {}

// A cookie this page can read (not HttpOnly): the API's csrf_access_token and csrf_refresh_token. Cookies
// are not kept apart by port, so a page on 127.0.0.1:8000 reads those that the API on 127.0.0.1:5000 set.
function readCookie(name) {
  const found = document.cookie.split("; ").find((pair) => pair.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
}

// /refresh checks the refresh token's CSRF value; every other POST the access token's (/logout: the access
// token's while this browser still holds it).
function csrfFor(path) {
  if (path === "/refresh") return readCookie("csrf_refresh_token");
  return readCookie("csrf_access_token") || readCookie("csrf_refresh_token");
}

// One request to the API. Resolves to {status, data} for any answer the browser lets the page read,
// including 401s; rejects with a NetworkError when there is none to read.
async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (COOKIES && method !== "GET" && csrfFor(path)) headers["X-CSRF-TOKEN"] = csrfFor(path);
  const before = readCookie("csrf_access_token");
  let response;
  try {
    response = await fetch(API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: COOKIES ? "include" : "same-origin", // "include": send and accept the API's cookies
    });
  } catch (error) {
    // fetch tells the page nothing more, on purpose: the browser's console says which it was.
    throw new NetworkError(
      `Network or CORS error: no answer from ${API}${path} could be read. Either the API is not running there, ` +
      `or it did not allow this page's origin (${location.origin}), and the browser blocked its answer (CORS). ` +
      `Start the API with CORS_ORIGINS=${location.origin}, or open this page from an origin it allows.`
    );
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: data stays null
  }
  if (COOKIES) {
    const after = readCookie("csrf_access_token");
    if (before && after && after !== before && path !== "/refresh") {
      // The API renewed the access cookie on its way out (implicit refresh): a new CSRF value came with it.
      document.body.dataset.renewals = String(Number(document.body.dataset.renewals || 0) + 1);
      say(`The API renewed the access cookie with the answer to ${method} ${path} (implicit refresh).`);
    }
    $("cookies").textContent = document.cookie || "(none)";
  }
  return { status: response.status, data };
}

// The payload of a JWT: the middle part, base64url-encoded JSON. Reading it needs no key.
function payload(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
}

// An answer in words: the article's envelope {code, message}, or flask-jwt-extended's own {msg} (step 03).
function describe(status, data) {
  if (data && data.message !== undefined) {
    const message = typeof data.message === "string" ? data.message : JSON.stringify(data.message);
    return `${message} (code ${data.code ?? "none"}, HTTP ${status})`;
  }
  if (data && data.msg) return `${data.msg} (HTTP ${status})`;
  return `HTTP ${status}`;
}

function say(text, kind = "info") {
  const message = $("message");
  message.textContent = text;
  message.className = kind;
  message.hidden = !text;
}

function forget() {
  for (const key of ["token", "refresh_token", "userid"]) store.removeItem(key);
  clearInterval(countdownTimer);
}

function showLogin() {
  $("session").hidden = true;
  $("login").hidden = false;
  $("users").tBodies[0].replaceChildren();
}

function showCookieSession(identity) {
  $("identity").textContent = identity;
  $("userid").textContent = store.getItem("userid") ?? "?";
  $("token").textContent = "(in the HttpOnly cookie access_token_cookie: this page cannot read it, nor can any script)";
  $("claims").textContent = "";
  $("expires").textContent = "";
  $("countdown").textContent = "the API renews it while you use the page";
  $("cookies").textContent = document.cookie || "(none)";
  $("login").hidden = true;
  $("session").hidden = false;
}

function showSession() {
  const token = store.getItem("token");
  const claims = payload(token);
  $("identity").textContent = claims.sub;
  $("userid").textContent = store.getItem("userid");
  $("token").textContent = token;
  $("claims").textContent = JSON.stringify(claims, null, 2);
  $("expires").textContent = new Date(claims.exp * 1000).toLocaleString();
  $("expires").dateTime = new Date(claims.exp * 1000).toISOString();
  const tick = () => {
    const left = Math.ceil((claims.exp * 1000 - Date.now()) / 1000);
    $("countdown").textContent = left > 0
      ? `in ${left >= 60 ? `${Math.floor(left / 60)} min ${left % 60} s` : `${left} s`}`
      : "expired, by this browser's clock: the server will refuse it";
  };
  clearInterval(countdownTimer);
  tick();
  countdownTimer = setInterval(tick, 500);
  $("login").hidden = true;
  $("session").hidden = false;
}

async function loadUsers(retried = false) {
  const { status, data } = await call("GET", "/users", { token: store.getItem("token") });
  if (COOKIES && status === 200 && data) showCookieSession(data.identity);
  if (COOKIES && status === 401 && data && data.code === 201 && !retried) {
    // The access cookie expired (the page was idle): trade the refresh cookie for a new one, then try again.
    const refreshed = await call("POST", "/refresh");
    if (refreshed.status === 200) {
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      say("The access cookie had expired: POST /refresh gave a new one.");  // before the retry: its failure, if any, has the last word
      await loadUsers(true);
      return;
    }
  }
  if (status === 200 && data && Array.isArray(data.users)) {
    const rows = data.users.map((user) => {
      const row = document.createElement("tr");
      for (const value of [user.userid, user.username]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      return row;
    });
    $("users").tBodies[0].replaceChildren(...rows);
    return;
  }
  if (status === 401 || status === 422) {
    // The token is no good any more. Code 201 is the article's "token expired".
    forget();
    showLogin();
    say(data && data.code === 201 ? `${data.message} (code 201): log in again.` : `${describe(status, data)}: log in again.`, "error");
    return;
  }
  say(`GET /users: ${describe(status, data)}`, "error");
}

async function login(event) {
  event.preventDefault();
  $("login-button").disabled = true;
  say("");
  try {
    const body = { username: $("username").value, password: $("password").value };
    const { status, data } = await call("POST", "/login", { body });
    if (COOKIES && status === 200 && data && data.code === 200) {
      $("password").value = "";
      store.setItem("userid", data.userid); // the only thing kept: no token in storage
      await loadUsers();
      return;
    }
    if (status !== 200 || !data || !data.token) {
      say(`Login refused: ${describe(status, data)}`, "error");
      return;
    }
    $("password").value = "";
    store.setItem("token", data.token);
    store.setItem("userid", data.userid);
    if (data.refresh_token) store.setItem("refresh_token", data.refresh_token); // step06 on
    showSession();
    await loadUsers();
  } catch (error) {
    say(error.message, "error");
  } finally {
    $("login-button").disabled = false;
  }
}

async function logout() {
  delete document.body.dataset.logout;
  if (COOKIES) {
    // One POST: the server revokes both tokens and removes every cookie, the readable ones too.
    const { status, data } = await call("POST", "/logout").catch((error) => ({ status: 0, data: { message: error.message } }));
    forget();
    showLogin();
    say(status === 200 ? "Logged out: the server revoked both tokens and removed the cookies."
      : `Logout refused: ${describe(status, data)}`, status === 200 ? "info" : "error");
    $("cookies").textContent = document.cookie || "(none)";
    document.body.dataset.logout = "done";
    return;
  }
  const tokens = [store.getItem("token"), store.getItem("refresh_token")].filter(Boolean);
  // Forget first: logging out of this page must not depend on the server.
  forget();
  showLogin();
  say("Logged out: this page forgot the token.");
  // From step06 on, POST /logout revokes a token on the server, each of the two. Earlier steps have no
  // /logout: the 404 (or the preflight it fails) changes nothing here.
  const answers = await Promise.allSettled(tokens.map((token) => call("POST", "/logout", { token })));
  const revoked = answers.filter((a) => a.status === "fulfilled" && a.value.status === 200).length;
  if (revoked) say(`Logged out: this page forgot the token, and the server revoked ${revoked} of them.`);
  document.body.dataset.logout = "done"; // for the tests: the server's answers are in
}

async function reload() {
  try {
    say("");
    await loadUsers();
  } catch (error) {
    say(error.message, "error");
  }
}

$("page-origin").textContent = location.origin;
$("mode").textContent = COOKIES ? "cookies (HttpOnly, with a CSRF header)" : "Authorization header (token in sessionStorage)";
$("api-url").textContent = API;
$("login-form").addEventListener("submit", login);
$("reload-users").addEventListener("click", reload);
$("logout").addEventListener("click", logout);
if (COOKIES) {
  // A reload of the tab: still logged in if the browser holds the API's cookies and the API accepts them.
  call("GET", "/users").then(({ status }) => status === 200 && reload()).catch(() => {});
} else if (store.getItem("token")) {
  // A reload of the tab: still logged in, as long as the server accepts the token.
  showSession();
  reload();
}
