// The plan of a goal run paused for approval: approve it, edit it, or reject it.

import { api } from "./api.js";
import { byId, el, say } from "./dom.js";

export class Approval {
  constructor(getRunId) {
    this.getRunId = getRunId;
    this.subtasks = [];
    this.shown = "";
    this.busy = false;
    this.section = byId("approval");
    this.buttons = ["approve-plan", "edit-plan", "reject-plan", "approve-edited"].map(byId);
    this.labels = new Map(this.buttons.map((b) => [b, b.textContent]));
    byId("approve-plan").addEventListener("click", () => this.send("approve", {}, byId("approve-plan")));
    byId("reject-plan").addEventListener("click", () => this.reject());
    byId("edit-plan").addEventListener("click", () => this.edit());
    byId("discard-edits").addEventListener("click", () => (byId("plan-editor").hidden = true));
    byId("approve-edited").addEventListener("click", () => this.approveEdited());
  }

  reset() {
    this.busy = false;
    this.shown = "";
    this.section.hidden = true;
    byId("plan-editor").hidden = true;
    this.setBusy(false);
    say(byId("approval-error"), "");
  }

  update(doc) {
    // Prefect's Paused, one of the pending bucket's states, is the one that waits for us.
    const paused = doc.state === "Paused";
    this.section.hidden = !paused;
    if (!paused) {
      if (this.busy) this.reset();
      return;
    }
    this.subtasks = doc.subtasks;
    const shown = JSON.stringify(
      doc.subtasks.map((s) => [s.id, s.title, s.kind, s.tier, s.depends_on, s.revision, s.replaced_by]),
    );
    if (shown === this.shown) return;
    this.shown = shown;
    // A revision waiting for approval is shown as a diff of the plan: its rows marked +,
    // the failed subtasks it replaces struck through.
    const revision = pendingRevision(doc);
    byId("approval-heading").textContent = revision
      ? `Waiting for your approval of plan revision ${revision}`
      : "Waiting for your approval";
    byId("approval-note").textContent = revision
      ? "The replanner proposes the subtasks marked +. Nothing of it runs until you approve it."
      : "The planner proposed this plan. Nothing runs until you approve it.";
    byId("approval-plan").replaceChildren(
      ...doc.subtasks.map((s) => {
        const after = s.depends_on?.length ? ` · after ${s.depends_on.join(", ")}` : "";
        const added = revision > 0 && s.revision === revision;
        const replaced = revision > 0 && typeof s.replaced_by === "string" && s.replaced_by;
        const mark = added ? "+" : replaced ? "−" : "";
        return el(
          "li",
          { class: added ? "added" : replaced ? "replaced" : null },
          el("span", { class: "diff", text: mark, "aria-label": added ? "added" : replaced ? "replaced" : null }),
          el("code", { text: s.id }),
          " ",
          el("span", { text: s.title }),
          el("span", {
            class: "muted",
            text: ` — ${s.kind} · tier ${s.tier}${after}${replaced ? ` · replaced by ${s.replaced_by}` : ""}`,
          }),
        );
      }),
    );
  }

  /** The plan as the planner wrote it, instructions included, to edit as JSON. */
  async edit() {
    say(byId("approval-error"), "");
    try {
      const plan = await api(`/task/${encodeURIComponent(this.getRunId())}/plan`);
      byId("plan-json").value = JSON.stringify({ subtasks: plan.subtasks }, null, 2);
    } catch (error) {
      say(byId("approval-error"), error.message);
      return;
    }
    byId("plan-editor").hidden = false;
    byId("plan-json").focus();
  }

  approveEdited() {
    let plan;
    try {
      plan = JSON.parse(byId("plan-json").value);
    } catch (error) {
      say(byId("approval-error"), `The plan is not valid JSON: ${error.message}`);
      return;
    }
    this.send("approve", { plan }, byId("approve-edited"));
  }

  reject() {
    if (!window.confirm("Reject this plan? The goal run will be cancelled.")) return;
    this.send("reject", undefined, byId("reject-plan"));
  }

  /** Disable the buttons while a request is out; `pressed` says what it is doing. */
  setBusy(busy, pressed = null) {
    this.busy = busy;
    for (const button of this.buttons) {
      button.disabled = busy;
      button.textContent = this.labels.get(button);
    }
    if (busy && pressed) pressed.textContent = pressed.id === "reject-plan" ? "Rejecting…" : "Approving…";
  }

  async send(action, body, pressed) {
    say(byId("approval-error"), "");
    this.setBusy(true, pressed);
    try {
      await api(`/task/${encodeURIComponent(this.getRunId())}/${action}`, { method: "POST", body });
      byId("plan-editor").hidden = true; // the run resumes; the next document hides the panel
    } catch (error) {
      this.setBusy(false);
      say(byId("approval-error"), error.message);
    }
  }
}

/** The plan revision a paused goal run waits on (0: the plan as first made): the last
 * replanning point, while it waits for approval. */
export function pendingRevision(doc) {
  const replans = Array.isArray(doc?.replans) ? doc.replans : [];
  const last = replans[replans.length - 1];
  if (!last || last.waiting !== true || last.refused || !Number.isSafeInteger(last.revision)) return 0;
  return last.revision;
}
