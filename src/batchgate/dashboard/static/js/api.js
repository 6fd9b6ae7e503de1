// The public API, MKA1 dialect, with the key this tab signed in with.

import { credentials } from "./session.js";

const PREFIX = "/api/v1/llm";
export const PAGE = 100;

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const creds = credentials();
  const all = { ...extra };
  if (creds) {
    all.Authorization = `Bearer ${creds.key}`;
    if (creds.onBehalfOf) all["X-On-Behalf-Of"] = creds.onBehalfOf;
  }
  return all;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const body = await response.json();
    message = body.error?.message || message;
    code = body.error?.code ?? null;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("batchgate:unauthorized", { detail: message }));
  return new ApiError(response.status, message, code);
}

async function request(method, path, { json, form } = {}) {
  const init = { method, headers: headers(json ? { "Content-Type": "application/json" } : {}) };
  if (json) init.body = JSON.stringify(json);
  if (form) init.body = form;
  let response;
  try {
    response = await fetch(PREFIX + path, init);
  } catch {
    throw new ApiError(0, "The server could not be reached.", "unreachable");
  }
  if (!response.ok) throw await failure(response);
  return response;
}

const json = async (method, path, options) => (await request(method, path, options)).json();

export const listBatches = () => json("GET", `/batches?limit=${PAGE}&order=desc`);
export const getBatch = (id) => json("GET", `/batches/${encodeURIComponent(id)}`);
export const cancelBatch = (id) => json("POST", `/batches/${encodeURIComponent(id)}/cancel`);
export const createBatch = (spec) => json("POST", "/batches", { json: spec });
export const listFiles = () => json("GET", `/files?limit=${PAGE}&order=desc`);
export const getFile = (id) => json("GET", `/files/${encodeURIComponent(id)}`);
export const deleteFile = (id) => json("DELETE", `/files/${encodeURIComponent(id)}`);

/** Whether the key is good: any authorised call answers 2xx. */
export const checkKey = () => json("GET", "/batches?limit=1");

export function uploadFile(file, purpose = "batch") {
  const form = new FormData();
  form.append("purpose", purpose); // first, so the server checks the lines while they arrive
  form.append("file", file, file.name);
  return json("POST", "/files", { form });
}

const content = (id) => request("GET", `/files/${encodeURIComponent(id)}/content`);

/** The file's bytes as a Blob and its filename from Content-Disposition. */
export async function fileBlob(id) {
  const response = await content(id);
  return { blob: await response.blob(), filename: filenameOf(response) || `${id}.jsonl` };
}

function filenameOf(response) {
  const header = response.headers.get("Content-Disposition") || "";
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (encoded) return decodeURIComponent(encoded[1]);
  return /filename="([^"]+)"/i.exec(header)?.[1] || null;
}

/** The first `count` JSON lines of a file, read as a stream: a big file is never read whole. */
export async function firstLines(id, count) {
  const response = await content(id);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const lines = [];
  let pending = "";
  while (lines.length < count) {
    const { value, done } = await reader.read();
    if (done) {
      if (pending.trim()) lines.push(pending);
      break;
    }
    const parts = (pending + value).split("\n");
    pending = parts.pop();
    lines.push(...parts.filter((line) => line.trim()));
  }
  await reader.cancel().catch(() => {});
  return lines.slice(0, count).map((line) => JSON.parse(line));
}
