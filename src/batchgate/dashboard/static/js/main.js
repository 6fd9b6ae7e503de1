// The dashboard's entry: a hash router over the views, and the sign-in gate in front of them.

import { h } from "./dom.js";
import { credentials, describe, forget } from "./session.js";
import * as batch from "./views/batch.js";
import * as batches from "./views/batches.js";
import * as files from "./views/files.js";
import * as login from "./views/login.js";
import * as newBatch from "./views/new.js";

// Each route: the hash path it matches, the view that shows it, and the nav entry it lights.
const ROUTES = [
  { pattern: /^\/batches\/([\w-]+)$/, view: batch, nav: "batches", title: (id) => id },
  { pattern: /^\/batches$/, view: batches, nav: "batches", title: () => "Batches" },
  { pattern: /^\/files$/, view: files, nav: "files", title: () => "Files" },
  { pattern: /^\/new$/, view: newBatch, nav: "new", title: () => "New batch" },
];

const view = document.getElementById("view");
const nav = document.querySelector(".nav");
const who = document.querySelector(".who");
let unmount = () => {};
let signingIn = false;

function location() {
  const [path, search = ""] = window.location.hash.replace(/^#/, "").split("?");
  return { path: path || "/batches", query: new URLSearchParams(search) };
}

function show() {
  unmount();
  const creds = credentials();
  nav.hidden = who.hidden = !creds;
  if (!creds) return showLogin();
  who.querySelector(".who-scope").textContent = describe(creds);
  const { path, query } = location();
  const route = ROUTES.find((r) => r.pattern.test(path));
  if (!route) {
    window.location.hash = "#/batches";
    return;
  }
  const params = route.pattern.exec(path).slice(1);
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${route.title(...params)} · batchgate`;
  view.setAttribute("aria-busy", "false");
  unmount = route.view.mount(view, { params, query }) || (() => {});
}

function showLogin(message = null) {
  signingIn = true;
  nav.hidden = who.hidden = true;
  document.title = "Sign in · batchgate";
  view.setAttribute("aria-busy", "false");
  unmount = login.mount(view, {
    message,
    onSignedIn: () => {
      signingIn = false;
      show();
    },
  });
}

window.addEventListener("hashchange", () => {
  show();
  view.focus({ preventScroll: true });
});
window.addEventListener("batchgate:unauthorized", (event) => {
  if (signingIn) return; // the sign-in form reports a refused key itself
  forget();
  unmount();
  showLogin(`Signed out: ${event.detail}`);
});
who.querySelector("[data-action=sign-out]").addEventListener("click", () => {
  forget();
  unmount();
  showLogin();
  view.prepend(h("p", { class: "notice notice-info", role: "status" }, "Signed out."));
});

show();
