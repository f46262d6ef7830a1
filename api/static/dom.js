// Small DOM and formatting helpers shared by the page's modules.

/** A new element; attributes are set as text, never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export const byId = (id) => document.getElementById(id);

/** Show `text` in `node`, or hide the node when the text is empty. */
export function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

// The server folds Prefect's state names into these buckets and sends each goal run's and
// subtask's bucket beside its state. The page decides colours, "ended" and "retryable" from
// the bucket, never from state names of its own, which drifted from the server's before.
const BUCKETS = new Set(["pending", "running", "completed", "failed", "cancelled", "skipped"]);
const ENDED = new Set(["completed", "failed", "cancelled", "skipped"]); // skipped: subtasks only
const RETRYABLE = new Set(["failed", "cancelled"]);

/** The bucket the server sent with a goal run or subtask; "pending" if it sent none (an older
 * server) or one this page does not know. */
export const bucketOf = (item) => (BUCKETS.has(item?.bucket) ? item.bucket : "pending");

/** A goal run or subtask that has ended: nothing about it changes any more. */
export const hasEnded = (item) => ENDED.has(bucketOf(item));

/** A goal run that failed or was cancelled, which Retry runs again. */
export const isRetryable = (item) => RETRYABLE.has(bucketOf(item));

export function parseTime(text) {
  const ms = text ? Date.parse(text) : NaN;
  return Number.isNaN(ms) ? null : ms;
}

/** "0.4 s", "12 s", "3 min 04 s", "1 h 02 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "–";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** Dollars; null (an unpriced model's cost is unknown) reads "unpriced", never $0. */
export function formatCost(usd) {
  if (usd === null) return "unpriced";
  const value = Number(usd) || 0;
  return value > 0 && value < 0.01 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

export const formatCount = (n) => (Number(n) || 0).toLocaleString("en");

export function formatClock(ms) {
  return ms === null ? "" : new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "just now", "5 min ago", "3 h ago", or a date. */
export function formatAgo(ms, now = Date.now()) {
  if (ms === null) return "";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on another host has no clipboard API: fall back to a selected textarea.
  const area = el("textarea", { class: "offscreen", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

/** Make `button` copy what `getText` returns, saying so briefly on the button. */
export function makeCopyButton(button, getText) {
  const label = button.textContent;
  let timer = 0;
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    let outcome = "Copied";
    try {
      await writeClipboard(getText());
    } catch {
      outcome = "Select and copy";
    }
    button.textContent = outcome;
    clearTimeout(timer);
    timer = setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** Show the state of a goal run or subtask as a pill, coloured by its bucket. */
export function setPill(node, item) {
  node.textContent = item.state;
  node.dataset.state = item.state;
  node.dataset.bucket = bucketOf(item);
}

/** Seconds from `startMs` to `endMs` (or to now while it has not ended). */
export function secondsBetween(startMs, endMs, now = Date.now()) {
  if (startMs === null) return null;
  return Math.max(0, ((endMs ?? now) - startMs) / 1000);
}
