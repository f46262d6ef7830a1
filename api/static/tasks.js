// The /tasks page: the submit form, the history of goal runs, and which run is open.

import { api } from "./api.js";
import { bucketOf, byId, el, formatAgo, parseTime, say, setPill } from "./dom.js";
import { RunView } from "./run.js";

const RUN_PATH = /^\/tasks\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
const BUDGET = [
  { name: "max_tokens", label: "Max tokens", integer: true },
  { name: "max_cost_usd", label: "Max cost", integer: false },
  { name: "max_seconds", label: "Max seconds", integer: false },
  { name: "max_subtasks", label: "Max subtasks", integer: true },
];

/** Recent goal runs, newest first; refreshed on demand, never on a timer. */
class RunList {
  constructor(onOpen) {
    this.list = byId("history");
    this.current = null;
    this.list.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-run]");
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      onOpen(link.dataset.run);
    });
  }

  async refresh() {
    try {
      const page = await api("/task?limit=20");
      this.render(page.items);
      say(byId("history-error"), "");
    } catch (error) {
      say(byId("history-error"), `Could not load the history: ${error.message}`);
    }
  }

  render(items) {
    const now = Date.now();
    this.list.replaceChildren(
      ...items.map((run) => {
        const pill = el("span", { class: "pill" });
        setPill(pill, run);
        return el(
          "li",
          {},
          el(
            "a",
            { href: `/tasks/${run.id}`, class: "history-item", "data-run": run.id },
            el("span", { class: "history-goal", text: run.goal || "(no goal)" }),
            el("span", { class: "history-meta" }, pill, el("span", { class: "muted", text: formatAgo(parseTime(run.created_at), now) })),
          ),
        );
      }),
    );
    byId("history-empty").hidden = items.length > 0;
    this.highlight(this.current);
  }

  highlight(id) {
    this.current = id;
    for (const link of this.list.querySelectorAll("a[data-run]")) {
      if (link.dataset.run === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** Keep the open run's entry in step with its live state. */
  mark(doc) {
    const link = this.list.querySelector(`a[data-run="${CSS.escape(doc.id)}"]`);
    const pill = link?.querySelector(".pill");
    if (pill && (pill.dataset.state !== doc.state || pill.dataset.bucket !== bucketOf(doc))) setPill(pill, doc);
  }
}

const formatWhen = (text) => new Date(parseTime(text)).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });

/** Recurring goals: a Prefect deployment schedule each; pause, resume, delete, add. */
class ScheduleList {
  constructor() {
    this.list = byId("schedules");
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.act(button.dataset.id, button.dataset.action);
    });
    byId("schedule-form").addEventListener("submit", (event) => this.add(event));
    byId("schedule-add").disabled = false;
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) byId("schedule-timezone").value = zone;
  }

  async refresh() {
    try {
      this.render((await api("/schedules")).items);
      say(byId("schedules-error"), "");
    } catch (error) {
      say(byId("schedules-error"), `Could not load the recurring goals: ${error.message}`);
    }
  }

  render(items) {
    this.list.replaceChildren(
      ...items.map((s) => {
        const when = s.cron ? `cron ${s.cron} (${s.timezone})` : `every ${s.interval_s} s`;
        const next = s.next_runs.length ? `next ${formatWhen(s.next_runs[0])}` : "paused";
        const toggle = s.active ? "pause" : "resume";
        return el(
          "li",
          { class: "schedule", "data-schedule": s.id, "data-active": String(s.active) },
          el("span", { class: "history-goal", text: s.goal }),
          el("span", { class: "muted schedule-when", text: `${when} · ${next}` }),
          el(
            "span",
            { class: "schedule-actions" },
            el("button", { type: "button", class: "quiet", "data-id": s.id, "data-action": toggle, text: toggle === "pause" ? "Pause" : "Resume" }),
            el("button", { type: "button", class: "quiet", "data-id": s.id, "data-action": "delete", text: "Delete" }),
          ),
        );
      }),
    );
    byId("schedules-empty").hidden = items.length > 0;
  }

  async act(id, action) {
    try {
      if (action === "delete") await api(`/schedules/${id}`, { method: "DELETE" });
      else await api(`/schedules/${id}/${action}`, { method: "POST" });
      await this.refresh();
    } catch (error) {
      say(byId("schedules-error"), `Not done. ${error.message}`);
    }
  }

  async add(event) {
    event.preventDefault();
    const goal = byId("schedule-goal").value.trim();
    const when = byId("schedule-when").value.trim();
    if (!goal || !when) {
      say(byId("schedules-error"), "Write a goal and when to run it.");
      return;
    }
    const body = { goal, timezone: byId("schedule-timezone").value.trim() || "UTC" };
    if (/^\d+(\.\d+)?$/.test(when)) body.interval_s = Number(when);
    else body.cron = when;
    try {
      await api("/schedules", { method: "POST", body });
      byId("schedule-goal").value = "";
      byId("schedule-when").value = "";
      say(byId("schedules-error"), "");
      await this.refresh();
    } catch (error) {
      say(byId("schedules-error"), `Not added. ${error.message}`);
    }
  }
}

const runs = new RunList((id) => openRun(id, true));
const schedules = new ScheduleList();
const view = new RunView({
  onDocument: (doc) => runs.mark(doc),
  onFinished: () => runs.refresh(),
});

function openRun(id, push) {
  if (push && location.pathname !== `/tasks/${id}`) history.pushState({ id }, "", `/tasks/${id}`);
  document.body.classList.add("has-run");
  runs.highlight(id);
  view.open(id);
}

function showNothing() {
  document.body.classList.remove("has-run");
  runs.highlight(null);
  view.close();
  document.title = "Mission Control";
}

/** The request body from the form, or a sentence saying what to fix. */
function readForm() {
  const goal = byId("goal").value.trim();
  if (!goal) return { error: "Write a goal first." };
  const body = { goal, approve: byId("approve").checked };
  const budget = {};
  for (const { name, label, integer } of BUDGET) {
    const input = byId(name);
    if (input.validity.badInput) return { error: `${label}: enter a number, or leave it empty for no limit.` };
    if (!input.value.trim()) continue;
    const value = Number(input.value);
    if (!(value > 0) || (integer && !Number.isInteger(value))) {
      const kind = integer ? "a whole number above 0" : "a number above 0";
      return { error: `${label}: enter ${kind}, or leave it empty for no limit.` };
    }
    budget[name] = value;
  }
  if (Object.keys(budget).length) body.budget = budget;
  return { body };
}

async function submitGoal(event) {
  event.preventDefault();
  const error = byId("form-error");
  const { body, error: problem } = readForm();
  if (problem) {
    say(error, problem);
    return;
  }
  const button = byId("submit");
  button.disabled = true;
  button.textContent = "Submitting…";
  try {
    const created = await api("/task/compound", { method: "POST", body });
    say(error, "");
    byId("goal").value = "";
    openRun(created.id, true);
    runs.refresh();
  } catch (failure) {
    say(error, `Not submitted. ${failure.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Submit";
  }
}

byId("goal-form").addEventListener("submit", submitGoal);
byId("submit").disabled = false;
byId("goal").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    byId("goal-form").requestSubmit();
  }
});
window.addEventListener("popstate", () => {
  const match = location.pathname.match(RUN_PATH);
  if (match) openRun(match[1], false);
  else showNothing();
});

const initial = byId("app").dataset.runId;
if (initial) openRun(initial, false);
runs.refresh();
schedules.refresh();
