// The front end of the article's API, on an origin of its own: log in, show the token, list the users.
// Plain JavaScript and fetch, no build step. Served by `python -m http.server 8000 --directory frontend`,
// it calls the API at http://127.0.0.1:5000, another origin: the API must allow this one (CORS_ORIGINS).
"use strict";

// Where the API is: ?api=http://127.0.0.1:5001 in the page's address, else flask run's default.
const API = (new URLSearchParams(location.search).get("api") || "http://127.0.0.1:5000").replace(/\/+$/, "");

// The tokens live in sessionStorage: they survive a reload of this tab, and are gone when the tab closes;
// other tabs do not see them. localStorage would keep them for good, for every page of this origin.
// Script injected into the page (XSS) could read either: this page writes what it receives with
// textContent only, never as HTML.
const store = window.sessionStorage;

const $ = (id) => document.getElementById(id);
let countdownTimer = null;

class NetworkError extends Error {}

// One request to the API. Resolves to {status, data} for any answer the browser lets the page read,
// including 401s; rejects with a NetworkError when there is none to read.
async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
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

async function loadUsers() {
  const { status, data } = await call("GET", "/users", { token: store.getItem("token") });
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
$("api-url").textContent = API;
$("login-form").addEventListener("submit", login);
$("reload-users").addEventListener("click", reload);
$("logout").addEventListener("click", logout);
if (store.getItem("token")) {
  // A reload of the tab: still logged in, as long as the server accepts the token.
  showSession();
  reload();
}
