// The hostile page's two attempts at POST /logout with the visitor's cookies: ?api=<the API>&attack=form|fetch
"use strict";
const params = new URLSearchParams(location.search);
const api = (params.get("api") || "http://127.0.0.1:5000").replace(/\/+$/, "");
const attack = params.get("attack") || "form";
document.getElementById("attack").textContent = `${attack} → POST ${api}/logout`;
if (attack === "form") {
  // A top-level navigation: the browser sends the API's cookies only if SameSite allows it for this site.
  const form = document.getElementById("attack-form");
  form.action = api + "/logout";
  form.submit();
} else {
  // A "simple" cross-origin request (text/plain, no custom header): no preflight, so the browser sends it.
  // CORS keeps the answer from this page, but the request has reached the API all the same.
  fetch(api + "/logout", { method: "POST", credentials: "include", mode: "no-cors", body: "csrf_token=a-guess",
                           headers: { "Content-Type": "text/plain" } })
    .finally(() => { document.body.dataset.sent = "yes"; });
}
