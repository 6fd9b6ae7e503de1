// Pieces several views share: status badge, progress bar, buttons that download or act.

import { fileBlob } from "./api.js";
import { h, notice } from "./dom.js";
import { number, progress, statusOf } from "./format.js";

export function statusBadge(batch) {
  const { label, tone } = statusOf(batch);
  return h("span", { class: `badge badge-${tone}`, "data-status": batch.status }, label);
}

export function progressBar(batch, { large = false } = {}) {
  const { total, completed, failed, done } = progress(batch);
  const bar = h("div", {
    class: large ? "progress progress-large" : "progress",
    role: "progressbar",
    "aria-label": `${batch.id} progress`,
    "aria-valuemin": 0,
    "aria-valuemax": total,
    "aria-valuenow": done,
    "aria-valuetext": `${number(done)} of ${number(total)} lines done, ${number(failed)} failed`,
  });
  const share = (n) => (total > 0 ? `${(100 * n) / total}%` : "0%");
  const ok = h("span", { class: "progress-ok" });
  const bad = h("span", { class: "progress-failed" });
  ok.style.width = share(completed); // CSSOM, which the page's style-src policy allows
  bad.style.width = share(failed);
  bar.append(ok, bad);
  return bar;
}

export function counts(batch) {
  const { total, failed, done } = progress(batch);
  return h(
    "span",
    { class: "counts" },
    h("span", { class: "counts-done" }, `${number(done)} / ${number(total)}`),
    failed ? h("span", { class: "counts-failed" }, `${number(failed)} failed`) : null,
  );
}

/** Saves a file the API serves: the download needs the key, so it goes fetch → blob → link. */
export async function saveFile(fileId) {
  const { blob, filename } = await fileBlob(fileId);
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A button that runs `action` once at a time, shows it is busy, and reports a failure beside itself. */
export function actionButton(label, action, { tone = "", busyLabel = "Working…", focusKey = null } = {}) {
  const button = h("button", { type: "button", class: `button ${tone}`.trim(), "data-focus-key": focusKey }, label);
  const wrap = h("span", { class: "action" }, button);
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.textContent = busyLabel;
    wrap.querySelector(".notice")?.remove();
    try {
      await action();
    } catch (error) {
      wrap.append(notice("error", error.message));
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
  return wrap;
}

export const downloadButton = (fileId, label) =>
  actionButton(label, () => saveFile(fileId), { busyLabel: "Downloading…", focusKey: `download-${fileId}` });

/** Re-renders `node` with `render()` and puts the focus back on the element with the same data-focus-key. */
export function keepFocus(node, render) {
  const active = document.activeElement;
  const key = node.contains(active) ? active.closest("[data-focus-key]")?.dataset.focusKey : null;
  render();
  if (key) node.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus({ preventScroll: true });
}
