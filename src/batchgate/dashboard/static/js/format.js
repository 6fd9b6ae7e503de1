// Pure functions from wire objects to what the page shows. Times are Unix seconds.

export const STATUSES = {
  validating: { label: "Validating", tone: "info" },
  in_progress: { label: "In progress", tone: "active" },
  finalizing: { label: "Finalizing", tone: "active" },
  completed: { label: "Completed", tone: "ok" },
  failed: { label: "Failed", tone: "bad" },
  expired: { label: "Expired", tone: "warn" },
  cancelling: { label: "Cancelling", tone: "warn" },
  cancelled: { label: "Cancelled", tone: "muted" },
};
export const TERMINAL = new Set(["completed", "failed", "expired", "cancelled"]);
export const CANCELLABLE = new Set(["validating", "in_progress"]);

// The filters of the batches list: a name and the statuses it shows.
export const FILTERS = [
  { name: "All", statuses: null },
  { name: "Running", statuses: ["validating", "in_progress", "finalizing", "cancelling"] },
  { name: "Completed", statuses: ["completed"] },
  { name: "Failed", statuses: ["failed"] },
  { name: "Cancelled", statuses: ["cancelled"] },
  { name: "Expired", statuses: ["expired"] },
];

// Each timestamp of a batch, in the order a batch may pass them.
export const TIMELINE = [
  ["created_at", "Created"],
  ["in_progress_at", "Started"],
  ["cancelling_at", "Cancelling"],
  ["finalizing_at", "Finalizing"],
  ["completed_at", "Completed"],
  ["failed_at", "Failed"],
  ["cancelled_at", "Cancelled"],
  ["expired_at", "Expired"],
];

export const nowSeconds = () => Date.now() / 1000;

export function statusOf(batch) {
  return STATUSES[batch.status] || { label: batch.status, tone: "muted" };
}

export function progress(batch) {
  const { total, completed, failed } = batch.request_counts || { total: 0, completed: 0, failed: 0 };
  const done = completed + failed;
  return { total, completed, failed, done, fraction: total > 0 ? Math.min(done / total, 1) : 0 };
}

/** The batch's model: the one all its lines name (set once validated), else its metadata's "model". */
export function modelOf(batch) {
  return batch.model || batch.metadata?.model || null;
}

/** Lines per second since the batch started, from its own counts. */
export function rate(batch, now = nowSeconds()) {
  const { done } = progress(batch);
  const started = batch.in_progress_at;
  if (!started || done === 0) return null;
  const end = TERMINAL.has(batch.status) ? finishedAt(batch) || now : now;
  const elapsed = Math.max(end - started, 1);
  return done / elapsed;
}

/** Seconds left at the batch's own rate so far, or null when it cannot be told (or it is done).
 * The server's estimated_completion_at when it has one; within the first second, the page's own. */
export function eta(batch, now = nowSeconds()) {
  if (batch.status !== "in_progress") return null;
  if (batch.estimated_completion_at != null) return Math.max(batch.estimated_completion_at - now, 0);
  const perSecond = rate(batch, now);
  const { total, done } = progress(batch);
  if (!perSecond || total === 0) return null;
  return Math.max((total - done) / perSecond, 0);
}

export function finishedAt(batch) {
  return batch.completed_at || batch.failed_at || batch.cancelled_at || batch.expired_at || null;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 && m < 10 ? `${m} min ${s % 60} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

export function age(since, now = nowSeconds()) {
  return since ? `${duration(Math.max(now - since, 0))} ago` : "—";
}

export function timestamp(seconds) {
  if (!seconds) return "—";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export const number = (n) => (n ?? 0).toLocaleString("en-US");

/** The share of input tokens an upstream's prefix cache served, as "63%"; "—" until one reports any. */
export function cacheHitRate(usage) {
  const input = usage?.input_tokens || 0;
  const cached = usage?.input_tokens_details?.cached_tokens || 0;
  return input > 0 && cached > 0 ? `${Math.round((100 * cached) / input)}%` : "—";
}

export function perSecond(value) {
  if (!value) return "—";
  return value >= 10 ? `${Math.round(value)}/s` : `${value.toFixed(1)}/s`;
}

/** "/v1/chat/completions" → "chat/completions". */
export const endpointName = (endpoint) => (endpoint || "").replace(/^\/v1\//, "");

/** "key=value" lines into a metadata object; throws with the bad line's text. */
export function parseMetadata(text) {
  const metadata = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`Metadata lines are key=value; got "${line}".`);
    metadata[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return metadata;
}

/** The endpoint named by the first line of a JSONL text, or null. */
export function endpointOfFirstLine(text) {
  const first = text.split("\n").find((line) => line.trim());
  if (!first) return null;
  try {
    const url = JSON.parse(first).url;
    return typeof url === "string" ? url : null;
  } catch {
    return null;
  }
}
