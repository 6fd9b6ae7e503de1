// Asks for the API key (and an optional X-On-Behalf-Of) and keeps them in this tab's session.

import { checkKey } from "../api.js";
import { h, notice } from "../dom.js";
import { forget, remember } from "../session.js";

export function mount(view, { message, onSignedIn }) {
  const key = h("input", {
    id: "key",
    name: "key",
    type: "password",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "sk-…",
  });
  const onBehalfOf = h("input", { id: "on-behalf-of", name: "on-behalf-of", type: "text", autocomplete: "off" });
  const status = h("div", { class: "form-status" }, message ? notice("error", message) : null);
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Use an API key from ",
      h("code", {}, "batchgate keys create"),
      ". It stays in this browser tab only and is sent with each request.",
    ),
    h("label", { for: "key" }, "API key"),
    key,
    h("label", { for: "on-behalf-of" }, "X-On-Behalf-Of ", h("span", { class: "optional" }, "optional")),
    onBehalfOf,
    h("p", { class: "hint" }, "Batches and files made on behalf of someone are seen only with the same value."),
    submit,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    status.replaceChildren(notice("info", "Checking the key…"));
    remember(key.value.trim(), onBehalfOf.value.trim());
    try {
      await checkKey();
      onSignedIn();
    } catch (error) {
      forget();
      status.replaceChildren(notice("error", error.status === 401 ? "That key was not accepted." : error.message));
      submit.disabled = false;
      key.focus();
    }
  });
  view.replaceChildren(form);
  key.focus();
  return () => {};
}
