// One batch: its progress, timeline, details, usage, validation errors and first failed lines, live.

import { cancelBatch, firstLines, getBatch } from "../api.js";
import { actionButton, downloadButton, keepFocus, progressBar, statusBadge } from "../components.js";
import { h, notice } from "../dom.js";
import {
  CANCELLABLE,
  cacheHitRate,
  duration,
  eta,
  modelOf,
  nowSeconds,
  number,
  perSecond,
  progress,
  rate,
  TERMINAL,
  TIMELINE,
  timestamp,
} from "../format.js";
import { poll } from "../poll.js";

const INTERVAL = 1000;
const FAILED_LINES = 10;

export function mount(view, { params }) {
  const id = params[0];
  const state = { batch: null, failedLines: null, failedFor: null };
  const body = h("div", {}, h("p", { class: "muted" }, "Loading the batch…"));
  view.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "#/batches" }, "← Batches")), body);
  const show = () => keepFocus(body, () => body.replaceChildren(...render(state, refresh)));
  const refresh = async () => {
    try {
      state.batch = await getBatch(id);
    } catch (error) {
      body.replaceChildren(notice("error", error.status === 404 ? `No batch ${id} here.` : error.message));
      return "stop";
    }
    await loadFailedLines(state);
    show();
    return TERMINAL.has(state.batch.status) ? "stop" : null;
  };
  return poll(refresh, INTERVAL);
}

async function loadFailedLines(state) {
  const fileId = state.batch.error_file_id;
  if (!fileId || state.failedFor === fileId) return;
  state.failedFor = fileId;
  try {
    state.failedLines = await firstLines(fileId, FAILED_LINES);
  } catch (error) {
    state.failedLines = error;
  }
}

function render(state, refresh) {
  const { batch } = state;
  return [
    h(
      "div",
      { class: "page-head" },
      h("h1", { class: "mono batch-title" }, batch.id),
      statusBadge(batch),
      h("div", { class: "actions" }, actions(batch, refresh)),
    ),
    h(
      "div",
      { class: "grid", "data-status": batch.status },
      progressCard(batch),
      timelineCard(batch),
      detailsCard(batch),
      usageCard(batch),
      validationCard(batch),
      failedCard(batch, state.failedLines),
    ),
  ];
}

function actions(batch, refresh) {
  return [
    batch.output_file_id ? downloadButton(batch.output_file_id, "Download output") : null,
    batch.error_file_id ? downloadButton(batch.error_file_id, "Download errors") : null,
    CANCELLABLE.has(batch.status)
      ? actionButton(
          "Cancel batch",
          async () => {
            if (!window.confirm(`Cancel ${batch.id}? Lines not yet answered go to its error file.`)) return;
            await cancelBatch(batch.id);
            await refresh();
          },
          { tone: "danger", busyLabel: "Cancelling…", focusKey: "cancel" },
        )
      : null,
  ];
}

function card(title, ...content) {
  const slug = title.toLowerCase().replace(/\W+/g, "-");
  return h(
    "section",
    { class: `card card-${slug}`, "aria-labelledby": `card-${slug}` },
    h("h2", { id: `card-${slug}` }, title),
    content,
  );
}

function stat(label, value, tone = "") {
  return h("div", { class: `stat ${tone}`.trim() }, h("dt", {}, label), h("dd", {}, value));
}

function progressCard(batch) {
  const { total, completed, failed, done, fraction } = progress(batch);
  const now = nowSeconds();
  const left = eta(batch, now);
  return card(
    "Progress",
    h("p", { class: "big-number" }, `${Math.floor(fraction * 100)}%`, h("span", { class: "muted" }, " done")),
    progressBar(batch, { large: true }),
    h(
      "dl",
      { class: "stats" },
      stat("Completed", number(completed), "stat-ok"),
      stat("Failed", number(failed), failed ? "stat-bad" : ""),
      stat("Remaining", number(Math.max(total - done, 0))),
      stat("Total", number(total)),
      stat("Rate", perSecond(rate(batch, now))),
      stat("ETA", TERMINAL.has(batch.status) ? "done" : left === null ? "—" : duration(left)),
    ),
  );
}

function timelineCard(batch) {
  const steps = TIMELINE.filter(([field]) => batch[field]).map(([field, label]) =>
    h(
      "li",
      { class: `step step-${field.replace("_at", "")}` },
      h("span", { class: "step-label" }, label),
      h("time", { datetime: new Date(batch[field] * 1000).toISOString() }, timestamp(batch[field])),
    ),
  );
  if (!TERMINAL.has(batch.status) && batch.expires_at) {
    steps.push(
      h(
        "li",
        { class: "step step-future" },
        h("span", { class: "step-label" }, "Expires"),
        h("time", { datetime: new Date(batch.expires_at * 1000).toISOString() }, timestamp(batch.expires_at)),
      ),
    );
  }
  return card("Timeline", h("ol", { class: "timeline" }, steps));
}

function detailsCard(batch) {
  const rows = [
    ["Endpoint", h("span", { class: "mono" }, batch.endpoint)],
    ["Model", modelOf(batch) || "—"],
    [
      "Input file",
      h(
        "div",
        { class: "input-file" },
        h("span", { class: "mono" }, batch.input_file_id),
        downloadButton(batch.input_file_id, "Download"),
      ),
    ],
    ["Max concurrency", number(batch.max_concurrency)],
    ["Window", batch.completion_window],
    ...Object.entries(batch.metadata || {}).map(([key, value]) => [h("span", { class: "meta-key" }, key), value]),
  ];
  return card(
    "Details",
    h(
      "dl",
      { class: "pairs" },
      rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
    ),
  );
}

function usageCard(batch) {
  const usage = batch.usage || {};
  return card(
    "Usage",
    h(
      "dl",
      { class: "stats" },
      stat("Input tokens", number(usage.input_tokens)),
      stat("Output tokens", number(usage.output_tokens)),
      stat("Total tokens", number(usage.total_tokens)),
      stat("Cached", number(usage.input_tokens_details?.cached_tokens)),
      stat("Cache hit rate", cacheHitRate(usage)),
      stat("Repeats saved", number(batch.duplicates_saved)),
      stat("Reasoning", number(usage.output_tokens_details?.reasoning_tokens)),
    ),
  );
}

function validationCard(batch) {
  const errors = batch.errors?.data || [];
  if (errors.length === 0) return null;
  return card(
    "Validation errors",
    table(
      ["Line", "Code", "Message"],
      errors.map((e) => [e.line ?? "—", h("code", {}, e.code), e.message]),
    ),
  );
}

function failedCard(batch, lines) {
  if (!batch.error_file_id) {
    return batch.request_counts?.failed && !TERMINAL.has(batch.status)
      ? card("Failed lines", h("p", { class: "muted" }, "The error file is written when the batch ends."))
      : null;
  }
  if (lines === null) return card("Failed lines", h("p", { class: "muted" }, "Loading…"));
  if (lines instanceof Error) return card("Failed lines", notice("error", lines.message));
  return card(
    "Failed lines",
    h(
      "p",
      { class: "muted small" },
      lines.length === 1 ? "The error file's one line." : `The first ${lines.length} lines of the error file.`,
    ),
    table(
      ["Request", "Status", "Error"],
      lines.map((line) => [
        h("span", { class: "mono" }, line.custom_id),
        line.response?.status_code ?? "—",
        failure(line),
      ]),
    ),
  );
}

function failure(line) {
  if (line.error) return h("span", {}, h("code", {}, line.error.code || "error"), " ", line.error.message || "");
  const body = line.response?.body;
  const message = body?.error?.message || (typeof body === "string" ? body : JSON.stringify(body));
  return message || "—";
}

function table(columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table compact" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            cells.map((cell, i) => h("td", { "data-label": columns[i] }, cell)),
          ),
        ),
      ),
    ),
  );
}
