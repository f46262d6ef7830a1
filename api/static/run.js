// One goal run's live view, fed only by its Server-Sent Events stream.

import { api } from "./api.js";
import { Approval } from "./approval.js";
import { CostView } from "./cost.js";
import { Dag } from "./dag.js";
import { showDownloads } from "./downloads.js";
import {
  bucketOf, byId, el, formatClock, formatCost, formatCount, formatDuration, hasEnded, isRetryable,
  makeCopyButton, parseTime, say, secondsBetween, setPill,
} from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { linkCitations, SourcesCard } from "./sources.js";
import { SubtaskTable } from "./subtasks.js";
import { Timeline } from "./timeline.js";

const RETRY_MS = 3000;

/** Which of Cancel and Retry a goal run offers, and whether it is being cancelled. */
export function runActions(doc, cancelAsked = false) {
  const ended = hasEnded(doc);
  return {
    ended,
    // Cancelling (in the running bucket) is Prefect's word that a cancel is under way; until
    // it comes, the page's own request says so.
    cancelling: doc.state === "Cancelling" || (cancelAsked && !ended),
    retryable: isRetryable(doc),
  };
}

/** "3 of 5 done" and its note ("1 running · 1 failed"), from the document's counts. */
export function subtaskStats(counts) {
  const c = counts || {};
  if (!c.total) return { text: "–", note: "not planned yet" };
  const extra = [
    c.running && `${c.running} running`,
    c.failed && `${c.failed} failed`,
    c.skipped && `${c.skipped} skipped`,
    c.cancelled && `${c.cancelled} cancelled`,
  ].filter(Boolean);
  return { text: `${c.completed || 0} of ${c.total} done`, note: extra.join(" · ") };
}

/** The note under the cost: the goal run's limits, or "estimated" when it has none. */
export function budgetNote(budget) {
  const limits = budget
    ? [
        budget.max_tokens && `${formatCount(budget.max_tokens)} tokens`,
        budget.max_cost_usd && formatCost(budget.max_cost_usd),
        budget.max_seconds && formatDuration(budget.max_seconds),
        budget.max_subtasks && `${budget.max_subtasks} subtasks`,
      ].filter(Boolean)
    : [];
  return limits.length ? `budget ${limits.join(", ")}` : "estimated";
}

export class RunView {
  /** `onDocument(doc)` after every document; `onFinished(doc)` once the run has ended. */
  constructor({ onDocument, onFinished }) {
    this.onDocument = onDocument;
    this.onFinished = onFinished;
    this.id = null;
    this.doc = null;
    this.source = null;
    this.retry = 0;
    this.table = new SubtaskTable(() => this.id, (id) => this.dag.select(id));
    this.dag = new Dag(byId("dag"), (id) => this.table.select(id));
    this.approval = new Approval(() => this.id);
    this.sources = new SourcesCard(() => this.id);
    this.timeline = new Timeline(byId("timeline"), byId("timeline-empty"));
    this.cost = new CostView();
    makeCopyButton(byId("copy-run-id"), () => this.id);
    byId("cancel").addEventListener("click", () => this.cancel());
    byId("retry").addEventListener("click", () => this.retryRun());
    // A citation marker, in the result, a subtask's output or the flagged list, opens its source.
    byId("run-view").addEventListener("click", (event) => {
      const cite = event.target.closest("button.cite[data-source]");
      if (cite) this.sources.select(Number(cite.dataset.source), true);
    });
    setInterval(() => this.tick(), 1000); // a local clock: it never asks the server
  }

  open(id) {
    this.close();
    this.id = id;
    this.doc = null;
    this.cancelAsked = false;
    this.learnedKeys = [];
    this.result = null;
    byId("run-empty").hidden = true;
    byId("run-view").hidden = false;
    byId("run-id").textContent = id;
    byId("run-goal").textContent = "Connecting…";
    setPill(byId("run-state"), { state: "Connecting" });
    byId("run-simulated").hidden = true;
    for (const name of ["run-message", "run-error", "cancel-status"]) say(byId(name), "");
    for (const stat of ["elapsed", "subtasks", "tokens", "cost"]) {
      byId(`stat-${stat}`).textContent = "–";
      byId(`stat-${stat}-note`).textContent = "";
    }
    byId("cancel").hidden = true;
    byId("retry").hidden = true;
    byId("prefect-link").hidden = true;
    byId("learned").replaceChildren();
    byId("learned-empty").hidden = false;
    byId("result-card").hidden = true;
    byId("dag-empty").hidden = false;
    this.table.reset();
    this.approval.reset();
    this.sources.reset();
    this.cost.reset();
    this.timeline.update(null);
    this.dag.update([]);
    this.connect();
  }

  close() {
    clearTimeout(this.retry);
    this.source?.close();
    this.source = null;
    this.id = null;
    this.connection("idle");
    byId("run-view").hidden = true;
    byId("run-empty").hidden = false;
  }

  connect() {
    const source = new EventSource(`/task/${encodeURIComponent(this.id)}/events`);
    this.source = source;
    source.addEventListener("open", () => this.connection("live"));
    source.addEventListener("progress", (event) => {
      this.connection("live");
      this.render(JSON.parse(event.data));
    });
    source.addEventListener("delta", (event) => this.table.stream(JSON.parse(event.data)));
    source.addEventListener("end", () => {
      source.close();
      this.source = null;
      if (this.doc && hasEnded(this.doc)) {
        this.connection("idle");
        this.onFinished(this.doc);
      } else {
        this.reconnectLater(); // the server stopped following the run before it ended
      }
    });
    source.addEventListener("error", (event) => this.streamError(source, event));
  }

  streamError(source, event) {
    if (source !== this.source) return;
    if (typeof event.data === "string") {
      // The server's own `event: error`: it lost Prefect's event stream and ends this one.
      const detail = JSON.parse(event.data || "{}").detail;
      say(byId("run-error"), detail ? `${detail}; reconnecting` : "");
      this.connection("reconnecting");
      return;
    }
    this.connection("reconnecting");
    if (source.readyState === EventSource.CLOSED) this.diagnose();
    // Otherwise the browser reconnects by itself, sending Last-Event-ID.
  }

  /** The stream was refused outright: find out why, then give up or try again. */
  async diagnose() {
    const id = this.id;
    this.source?.close();
    this.source = null;
    try {
      await api(`/task/${encodeURIComponent(id)}/progress`);
      if (id === this.id) this.reconnectLater();
    } catch (error) {
      if (id !== this.id) return;
      if (error.status === 401 || error.status === 404 || error.status === 422) {
        this.connection("idle");
        say(byId("run-error"), error.message);
        if (!this.doc) byId("run-goal").textContent = "Goal run not available";
      } else {
        say(byId("run-error"), error.message);
        this.reconnectLater();
      }
    }
  }

  reconnectLater() {
    this.connection("reconnecting");
    clearTimeout(this.retry);
    const id = this.id;
    this.retry = setTimeout(() => id === this.id && this.connect(), RETRY_MS);
  }

  connection(state) {
    const indicator = byId("connection");
    indicator.dataset.state = state;
    indicator.hidden = state === "idle";
    indicator.textContent = state === "live" ? "Live" : state === "reconnecting" ? "Reconnecting…" : "";
    if (state === "live" && byId("run-error").textContent.endsWith("reconnecting")) say(byId("run-error"), "");
  }

  render(doc) {
    this.doc = doc;
    const actions = runActions(doc, this.cancelAsked);
    byId("run-goal").textContent = doc.goal || "(no goal)";
    setPill(byId("run-state"), doc);
    byId("run-simulated").hidden = doc.provider !== "simulated";
    say(byId("run-message"), doc.message || "");
    byId("run-message").dataset.state = doc.state;
    byId("run-message").dataset.bucket = bucketOf(doc);
    const link = byId("prefect-link");
    link.hidden = !doc.prefect_url;
    if (doc.prefect_url) link.href = doc.prefect_url;
    this.renderStats(doc);
    this.renderActions(actions);
    byId("dag-empty").hidden = doc.subtasks.length > 0;
    this.dag.update(doc.subtasks);
    this.table.update(doc.subtasks);
    this.approval.update(doc);
    this.cost.update(doc);
    this.timeline.update(doc);
    this.renderLearned(doc.learned || []);
    this.renderResult(doc.result);
    this.sources.update(doc.sources, doc.citations);
    byId("run-view").classList.toggle("finished", actions.ended);
    const goal = doc.goal.length > 48 ? `${doc.goal.slice(0, 47)}…` : doc.goal;
    document.title = `${doc.state} · ${goal} · Mission Control`;
    this.onDocument(doc);
    this.tick();
  }

  renderStats(doc) {
    const subtasks = subtaskStats(doc.counts);
    byId("stat-subtasks").textContent = subtasks.text;
    byId("stat-subtasks-note").textContent = subtasks.note;
    const usage = doc.usage || {};
    const input = usage.input_tokens || 0;
    const output = usage.output_tokens || 0;
    byId("stat-tokens").textContent = formatCount(input + output);
    byId("stat-tokens-note").textContent = `${formatCount(input)} in · ${formatCount(output)} out`;
    byId("stat-cost").textContent = formatCost(usage.cost_usd);
    byId("stat-cost-note").textContent = budgetNote(doc.budget);
    byId("stat-elapsed-note").textContent = doc.created_at ? `since ${formatClock(parseTime(doc.created_at))}` : "";
  }

  renderActions({ ended, cancelling, retryable }) {
    const button = byId("cancel");
    button.hidden = ended;
    button.disabled = cancelling;
    say(byId("cancel-status"), cancelling ? "Cancelling…" : "");
    byId("retry").hidden = !retryable;
  }

  /** Run a failed or cancelled goal run again, then follow it live once more. */
  async retryRun() {
    const id = this.id;
    byId("retry").disabled = true;
    try {
      await api(`/task/${encodeURIComponent(id)}/retry`, { method: "POST" });
      say(byId("run-error"), "");
      if (id !== this.id) return;
      byId("retry").hidden = true;
      clearTimeout(this.retry);
      this.source?.close();
      this.connect(); // the run's stream ended with the last attempt: follow the new one
    } catch (error) {
      say(byId("run-error"), error.message);
    } finally {
      byId("retry").disabled = false;
    }
  }

  async cancel() {
    if (!window.confirm("Cancel this goal run? Running subtasks are stopped and nothing new starts.")) return;
    this.cancelAsked = true;
    byId("cancel").disabled = true;
    say(byId("cancel-status"), "Cancelling…");
    try {
      await api(`/task/${encodeURIComponent(this.id)}/cancel`, { method: "POST" });
      say(byId("run-error"), "");
    } catch (error) {
      this.cancelAsked = false;
      byId("cancel").disabled = false;
      say(byId("cancel-status"), "");
      say(byId("run-error"), error.message);
    }
  }

  renderLearned(learned) {
    const list = byId("learned");
    const keys = learned.map((item) => `${item.subtask}|${item.at}|${item.text}`);
    const sameStart = this.learnedKeys.every((key, i) => keys[i] === key);
    if (!sameStart) {
      list.replaceChildren();
      this.learnedKeys = [];
    }
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    for (const item of learned.slice(this.learnedKeys.length)) {
      const at = parseTime(item.at);
      list.append(
        el(
          "li",
          {},
          el("span", { class: "learned-subtask", text: item.subtask }),
          el("span", { class: "learned-text", text: item.text }),
          el("time", { datetime: item.at, text: formatClock(at) }),
        ),
      );
    }
    this.learnedKeys = keys;
    byId("learned-empty").hidden = learned.length > 0;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  renderResult(result) {
    byId("result-card").hidden = !result;
    if (!result || result === this.result) return;
    this.result = result;
    showDownloads(this.id);
    // Escaped first: only our own tags, and buttons around the citation markers.
    byId("result").innerHTML = linkCitations(renderMarkdown(result));
  }

  tick() {
    this.table.tick();
    this.timeline.tick();
    const doc = this.doc;
    if (!doc) return;
    const created = parseTime(doc.created_at);
    const end = hasEnded(doc) ? parseTime(doc.updated_at) ?? Date.now() : null;
    byId("stat-elapsed").textContent = formatDuration(secondsBetween(created, end));
  }
}
