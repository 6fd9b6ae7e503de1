// The form that uploads a JSONL file (or takes an uploaded one) and starts a batch over it.

import { createBatch, firstLines, getFile, uploadFile } from "../api.js";
import { h, notice } from "../dom.js";
import { bytes, endpointOfFirstLine, parseMetadata } from "../format.js";

const ENDPOINTS = ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/images/generations"];
const DETECT = "detect";
const SNIFF_BYTES = 256 * 1024; // enough for the first line of any sensible file

export function mount(view, { query }) {
  const existingId = query.get("file");
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const fileInput = h("input", {
    id: "input-file",
    name: "file",
    type: "file",
    accept: ".jsonl,.json,.txt,application/jsonl",
    required: !existingId,
  });
  const endpoint = h(
    "select",
    { id: "endpoint", name: "endpoint" },
    h("option", { value: DETECT }, "From the file's first line"),
    ENDPOINTS.map((e) => h("option", { value: e }, e)),
  );
  const concurrency = h("input", {
    id: "max-concurrency",
    name: "max_concurrency",
    type: "number",
    min: 1,
    step: 1,
    inputmode: "numeric",
  });
  const metadata = h("textarea", {
    id: "metadata",
    name: "metadata",
    rows: 3,
    placeholder: "description=nightly eval\nowner=research",
    spellcheck: "false",
  });
  const submit = h(
    "button",
    { type: "submit", class: "button primary" },
    existingId ? "Start batch" : "Upload and start batch",
  );
  const source = existingId
    ? h(
        "p",
        { class: "using-file" },
        "Input: ",
        h("span", { class: "mono", id: "existing-file" }, existingId),
        " · ",
        h("a", { href: "#/new" }, "upload another file instead"),
      )
    : [
        h("label", { for: "input-file" }, "Input file (JSONL)"),
        fileInput,
        h("p", { class: "hint" }, "One request per line: custom_id, method, url, body."),
      ];
  const form = h(
    "form",
    { class: "card form", "aria-labelledby": "new-title" },
    h("h1", { id: "new-title" }, "New batch"),
    source,
    h("label", { for: "endpoint" }, "Endpoint"),
    endpoint,
    h("label", { for: "max-concurrency" }, "Max concurrency ", h("span", { class: "optional" }, "optional")),
    concurrency,
    h("p", { class: "hint" }, "Lines in flight at once for this batch; the server's default when empty."),
    h("label", { for: "metadata" }, "Metadata ", h("span", { class: "optional" }, "optional")),
    metadata,
    h("p", { class: "hint" }, "key=value, one pair a line (up to 16)."),
    h("div", { class: "form-actions" }, submit),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const spec = {
        completion_window: "24h",
        metadata: parseMetadata(metadata.value),
        ...(concurrency.value ? { max_concurrency: Number(concurrency.value) } : {}),
      };
      if (Object.keys(spec.metadata).length === 0) delete spec.metadata;
      const file = existingId ? await getFile(existingId) : await upload(fileInput.files[0], status);
      spec.input_file_id = file.id;
      spec.endpoint = endpoint.value === DETECT ? await detect(fileInput.files[0], existingId) : endpoint.value;
      status.replaceChildren(notice("info", "Starting the batch…"));
      const batch = await createBatch(spec);
      location.hash = `#/batches/${batch.id}`;
    } catch (error) {
      status.replaceChildren(notice("error", error.message));
      submit.disabled = false;
    }
  });
  view.replaceChildren(form);
  return () => {};
}

async function upload(file, status) {
  if (!file) throw new Error("Choose a JSONL file to upload.");
  status.replaceChildren(notice("info", `Uploading ${file.name} (${bytes(file.size)})…`));
  return uploadFile(file);
}

/** The endpoint the input's first line names: read from the chosen file, or streamed from the server. */
async function detect(file, existingId) {
  const found = existingId
    ? (await firstLines(existingId, 1))[0]?.url
    : endpointOfFirstLine(await file.slice(0, SNIFF_BYTES).text());
  if (!ENDPOINTS.includes(found)) {
    throw new Error("The file's first line names no known endpoint in its url; choose the endpoint.");
  }
  return found;
}
