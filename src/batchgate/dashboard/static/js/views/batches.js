// The batches list: live status, progress, counts, endpoint, model, age and ETA, with status filters.

import { listBatches, PAGE } from "../api.js";
import { counts, keepFocus, progressBar, statusBadge } from "../components.js";
import { h, notice } from "../dom.js";
import { age, duration, endpointName, eta, FILTERS, modelOf, nowSeconds, TERMINAL } from "../format.js";
import { poll } from "../poll.js";

const INTERVAL = 1500;

export function mount(view, { query }) {
  const filter = FILTERS.find((f) => f.name === query.get("filter")) || FILTERS[0];
  const body = h("div", { class: "list-body" }, h("p", { class: "muted" }, "Loading batches…"));
  view.replaceChildren(
    h(
      "section",
      { "aria-labelledby": "batches-title" },
      h(
        "div",
        { class: "page-head" },
        h("h1", { id: "batches-title" }, "Batches"),
        h("a", { class: "button primary", href: "#/new" }, "New batch"),
      ),
      filters(filter),
      body,
    ),
  );
  return poll(async () => {
    try {
      const page = await listBatches();
      keepFocus(body, () => body.replaceChildren(...render(page, filter)));
    } catch (error) {
      body.replaceChildren(notice("error", `Could not load batches: ${error.message}`));
    }
  }, INTERVAL);
}

function filters(active) {
  return h(
    "nav",
    { class: "filters", "aria-label": "Filter by status" },
    FILTERS.map((f) =>
      h(
        "a",
        {
          class: "chip",
          href: f.statuses ? `#/batches?filter=${encodeURIComponent(f.name)}` : "#/batches",
          "aria-current": f === active ? "true" : null,
        },
        f.name,
      ),
    ),
  );
}

function render(page, filter) {
  const batches = page.data.filter((b) => !filter.statuses || filter.statuses.includes(b.status));
  const footer = h(
    "p",
    { class: "muted small" },
    `Updates live. ${page.has_more ? `Showing the ${PAGE} newest batches.` : ""}`,
  );
  if (batches.length === 0) {
    const empty = page.data.length === 0 ? "No batches yet." : `No ${filter.name.toLowerCase()} batches.`;
    return [h("div", { class: "empty" }, h("p", {}, empty), h("a", { href: "#/new" }, "Start a batch")), footer];
  }
  const now = nowSeconds();
  return [
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table batches" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Batch", "Status", "Progress", "Endpoint", "Model", "Created", "ETA"].map((name) =>
              h("th", { scope: "col" }, name),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          batches.map((batch) => row(batch, now)),
        ),
      ),
    ),
    footer,
  ];
}

function row(batch, now) {
  const label = batch.metadata?.description || batch.metadata?.name || null;
  return h(
    "tr",
    { "data-batch-id": batch.id, "data-status": batch.status },
    h(
      "td",
      { class: "cell-batch", "data-label": "Batch" },
      h(
        "div",
        {},
        h("a", { class: "mono", href: `#/batches/${batch.id}`, "data-focus-key": `open-${batch.id}` }, batch.id),
        label ? h("span", { class: "sub" }, label) : null,
      ),
    ),
    h("td", { "data-label": "Status" }, statusBadge(batch)),
    h("td", { class: "cell-progress", "data-label": "Progress" }, h("div", {}, progressBar(batch), counts(batch))),
    h("td", { "data-label": "Endpoint" }, h("span", { class: "mono small" }, endpointName(batch.endpoint))),
    h("td", { "data-label": "Model" }, modelOf(batch) || h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Created" }, h("time", { datetime: iso(batch.created_at) }, age(batch.created_at, now))),
    h("td", { "data-label": "ETA", class: "cell-eta" }, etaText(batch, now)),
  );
}

function etaText(batch, now) {
  if (TERMINAL.has(batch.status)) return h("span", { class: "muted" }, "done");
  const left = eta(batch, now);
  return left === null ? h("span", { class: "muted" }, "—") : duration(left);
}

const iso = (seconds) => new Date(seconds * 1000).toISOString();
