// Files: list, download, delete, and start a batch from an uploaded input file.

import { deleteFile, listFiles } from "../api.js";
import { actionButton, downloadButton } from "../components.js";
import { h, notice } from "../dom.js";
import { age, bytes } from "../format.js";

export function mount(view) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading files…"));
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  view.replaceChildren(
    h(
      "section",
      { "aria-labelledby": "files-title" },
      h(
        "div",
        { class: "page-head" },
        h("h1", { id: "files-title" }, "Files"),
        h("a", { class: "button primary", href: "#/new" }, "Upload a file"),
      ),
      status,
      body,
    ),
  );
  const load = async () => {
    try {
      const page = await listFiles();
      body.replaceChildren(render(page.data, load, status));
    } catch (error) {
      body.replaceChildren(notice("error", `Could not load files: ${error.message}`));
    }
  };
  load();
  return () => {};
}

function render(files, reload, status) {
  if (files.length === 0) return h("div", { class: "empty" }, h("p", {}, "No files yet."));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table files" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Purpose", "Size", "Uploaded", "Actions"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        files.map((file) => row(file, reload, status)),
      ),
    ),
  );
}

function row(file, reload, status) {
  const remove = async () => {
    if (!window.confirm(`Delete ${file.filename} (${file.id})? This cannot be undone.`)) return;
    await deleteFile(file.id);
    status.replaceChildren(notice("ok", `Deleted ${file.filename}.`));
    await reload();
  };
  return h(
    "tr",
    { "data-file-id": file.id },
    h(
      "td",
      { class: "cell-batch", "data-label": "Name" },
      h("div", {}, h("span", { class: "filename" }, file.filename), h("span", { class: "sub mono" }, file.id)),
    ),
    h(
      "td",
      { "data-label": "Purpose" },
      h("span", { class: `badge badge-${file.purpose === "batch" ? "info" : "muted"}` }, file.purpose),
    ),
    h("td", { class: "nowrap", "data-label": "Size" }, bytes(file.bytes)),
    h("td", { class: "nowrap", "data-label": "Uploaded" }, age(file.created_at)),
    h(
      "td",
      { "data-label": "Actions" },
      h(
        "div",
        { class: "row-actions" },
        downloadButton(file.id, "Download"),
        file.purpose === "batch"
          ? h("a", { class: "button", href: `#/new?file=${encodeURIComponent(file.id)}` }, "Start batch")
          : null,
        actionButton("Delete", remove, { tone: "danger", busyLabel: "Deleting…" }),
      ),
    ),
  );
}
