// Team workflow on the dashboard: who holds the open conversation, its
// status, snooze and labels, the first-response (SLA) clock, and the
// controls in the conversation header (claim, assign, resolve, snooze, labels).
//
// Every change goes through the API; the answer (and, for every other
// agent, the conversation.updated frame) redraws the page. Assignment is a
// compare-and-set on the assignee this page shows, so two agents acting on
// stale pages cannot silently overwrite each other.

import { api } from "./api.js";
import { $, formatFull, formatWhen, h } from "./dom.js";
import { icon } from "./icons.js";

export const STATUS_LABELS = { open: "Open", pending: "Pending", snoozed: "Snoozed", resolved: "Resolved" };

// A conversation's last rating as a tag: "Rated 4/5", its comment as the tooltip (text only).
export function ratingTag(conv, big = false) {
  const rating = conv.rating;
  if (!rating) return null;
  return h(
    "span",
    { class: `tag tag--rating${big ? "" : " tag--small"}`, title: rating.comment || null, dataset: { score: rating.score } },
    `Rated ${rating.score}/5`,
    h("span", { class: "visually-hidden" }, ` by the customer${rating.comment ? `: ${rating.comment}` : ""}`),
  );
}

// A conversation's labels as chips (text only).
export function labelChips(labels) {
  return (labels || []).map((label) => h("li", { class: "label" }, label));
}

// "4:59", "2 h 5 min", "3 days": how long until the first reply is due.
function formatLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  const hours = Math.floor(s / 3600);
  if (hours < 48) return `${hours} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(hours / 24)} days`;
}

// The first-response clock of a conversation waiting for a reply, or null.
export function slaState(conv, now = Date.now()) {
  if (!conv || !conv.awaiting_reply || conv.status === "resolved") return null;
  if (conv.sla_breached) return { overdue: true, left: "overdue" };
  if (!conv.first_response_due_at) return null;
  const left = Date.parse(conv.first_response_due_at) - now;
  if (left <= 0) return { overdue: true, left: "overdue" };
  return { overdue: false, left: formatLeft(left) };
}

// Draw one SLA element (the list's tag or the header's line) from its conversation.
export function drawSla(el, conv, long = false) {
  const sla = slaState(conv);
  el.hidden = !sla;
  if (!sla) return;
  el.dataset.overdue = String(sla.overdue);
  if (conv.first_response_due_at) el.title = `First reply due ${formatFull(new Date(conv.first_response_due_at))}`;
  if (long) el.textContent = sla.overdue ? "First reply overdue" : `First reply due: ${sla.left} left`;
  else el.textContent = sla.overdue ? "Overdue" : `SLA ${sla.left}`;
}

export function assigneeText(conv, me) {
  if (!conv || !conv.assignee) return "Unassigned";
  return conv.assignee.id === me.id ? "Assigned to you" : `Assigned to ${conv.assignee.name || "another agent"}`;
}

// Tomorrow at 9:00, this browser's time.
function tomorrowMorning(now = new Date()) {
  const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 9, 0, 0, 0);
  return d;
}

// A value for <input type="datetime-local"> (local time, minutes).
function localInputValue(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const CONFLICTS = new Set(["already_assigned", "assignee_changed"]);

export class WorkflowBar {
  // open(): the open conversation's row (or null); update(conv): take a
  // newer row; refresh(id): read it again from the server.
  constructor({ me, open, update, refresh, showProblem }) {
    this.me = me;
    this.open = open;
    this.update = update;
    this.refresh = refresh;
    this.showProblem = showProblem;
    this.agents = [];
    this.busy = false;
    this.el = {
      status: $("#wf-status"),
      assignee: $("#wf-assignee"),
      sla: $("#wf-sla"),
      claim: $("#wf-claim"),
      assignTo: $("#wf-assign-to"),
      assign: $("#wf-assign"),
      resolve: $("#wf-resolve"),
      snoozeMenu: $("#wf-snooze-menu"),
      snoozeAt: $("#wf-snooze-at"),
      labels: $("#wf-labels"),
      rating: $("#wf-rating"),
      labelList: $("#wf-label-list"),
      labelForm: $("#wf-label-form"),
      labelInput: $("#wf-label-input"),
      knownLabels: $("#known-labels"),
    };
    this.el.labelForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const label = this.el.labelInput.value.trim();
      if (!label) return;
      this.run("add the label", "labels", { add: [label] }).then((ok) => {
        if (ok) this.el.labelInput.value = "";
      });
    });
    this.el.claim.addEventListener("click", () => this.claim());
    this.el.assign.addEventListener("click", () => this.assign());
    // The agent's pick stays while live updates redraw the bar, until it is
    // assigned or another conversation opens.
    this.pick = null; // {customerId, value}
    this.el.assignTo.addEventListener("change", () => {
      const conv = this.open();
      this.pick = conv ? { customerId: conv.customer_id, value: this.el.assignTo.value } : null;
    });
    this.el.resolve.addEventListener("click", () => this.toggleResolved());
    $("#wf-snooze-hour").addEventListener("click", () => this.snooze(new Date(Date.now() + 3600 * 1000)));
    $("#wf-snooze-tomorrow").addEventListener("click", () => this.snooze(tomorrowMorning()));
    $("#wf-snooze-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const at = new Date(this.el.snoozeAt.value);
      if (Number.isNaN(at.getTime()) || at <= new Date()) {
        this.showProblem("Choose a time in the future to snooze until.");
        return;
      }
      this.snooze(at);
    });
    this.el.snoozeMenu.addEventListener("toggle", () => {
      if (!this.el.snoozeMenu.open) return;
      const soon = new Date(Date.now() + 3 * 3600 * 1000);
      this.el.snoozeAt.min = localInputValue(new Date());
      if (!this.el.snoozeAt.value) this.el.snoozeAt.value = localInputValue(soon);
    });
  }

  async loadAgents() {
    try {
      const data = await api("GET", "/api/v1/agents");
      this.agents = data.agents;
    } catch {
      /* the assignees we can see are still offered */
    }
    this.render();
  }

  // The people to offer: the team, and whoever holds the open conversation.
  // Two agents of one name (or none: both "Support") are told apart by their logins.
  choices(conv) {
    const count = new Map();
    for (const a of this.agents) count.set(a.name, (count.get(a.name) || 0) + 1);
    const out = new Map(this.agents.map((a) => [a.id, count.get(a.name) > 1 && a.username ? `${a.name} (${a.username})` : a.name]));
    if (!out.has(this.me.id)) out.set(this.me.id, this.me.name);
    if (conv && conv.assignee && !out.has(conv.assignee.id)) out.set(conv.assignee.id, conv.assignee.name);
    return out;
  }

  render() {
    const conv = this.open();
    if (!conv) return;
    const status = conv.status || "open";
    const { el } = this;
    el.status.dataset.status = status;
    el.status.textContent =
      status === "snoozed" && conv.snoozed_until ? `Snoozed until ${formatWhen(new Date(conv.snoozed_until))}` : STATUS_LABELS[status] || status;
    el.assignee.textContent = assigneeText(conv, this.me);
    el.assignee.dataset.assigneeId = conv.assignee ? conv.assignee.id : "";
    drawSla(el.sla, conv, true);
    el.claim.hidden = Boolean(conv.assignee);
    el.resolve.textContent = status === "resolved" || status === "snoozed" ? "Reopen" : "Resolve";
    const current = conv.assignee ? conv.assignee.id : "";
    const picked = this.pick && this.pick.customerId === conv.customer_id ? this.pick.value : current;
    const options = [h("option", { value: "" }, "Unassigned")];
    for (const [id, name] of this.choices(conv)) options.push(h("option", { value: id }, id === this.me.id ? `${name} (you)` : name));
    el.assignTo.replaceChildren(...options);
    el.assignTo.value = picked;
    for (const b of [el.claim, el.assign, el.resolve]) b.disabled = this.busy;
    const rated = ratingTag(conv, true);
    el.rating.replaceChildren(...(rated ? [rated] : []));
    el.rating.hidden = !rated;
    const labels = conv.labels || [];
    el.labels.replaceChildren(...labelChips(labels));
    el.labels.hidden = labels.length === 0;
    el.labelList.replaceChildren(
      ...(labels.length
        ? labels.map((label) =>
            h(
              "li",
              { class: "label label--removable" },
              h("span", {}, label),
              h(
                "button",
                { type: "button", class: "label__remove", "aria-label": `Remove the label ${label}`, disabled: this.busy,
                  onclick: () => this.run("remove the label", "labels", { remove: [label] }) },
                icon("close"),
              ),
            ),
          )
        : [h("li", { class: "muted small" }, "No labels yet.")]),
    );
  }

  // The labels in use, offered while typing one.
  setKnownLabels(labels) {
    this.el.knownLabels.replaceChildren(...labels.map((l) => h("option", { value: l.label })));
  }

  tick() {
    const conv = this.open();
    if (conv) drawSla(this.el.sla, conv, true);
  }

  // Run one command on the open conversation; a conflict says who holds it now.
  async run(what, path, body) {
    const conv = this.open();
    if (!conv || this.busy) return false;
    const id = conv.customer_id;
    this.busy = true;
    this.render();
    try {
      const data = await api("POST", `/api/v1/conversations/${id}/${path}`, body);
      this.update(data.conversation);
      return true;
    } catch (err) {
      if (CONFLICTS.has(err.code)) {
        const now = await this.refresh(id);
        const holder = now && now.assignee ? (now.assignee.id === this.me.id ? "you" : now.assignee.name) : null;
        const who = holder ? ` It is now assigned to ${holder}.` : "";
        this.showProblem(
          err.code === "already_assigned"
            ? `Could not claim: another agent already has this conversation.${who}`
            : `Could not assign: someone changed the assignee in the meantime.${who} Check and try again.`,
        );
      } else {
        this.showProblem(`Could not ${what}: ${err.message}`);
      }
      return false;
    } finally {
      this.busy = false;
      this.render();
    }
  }

  claim() {
    return this.run("claim the conversation", "claim");
  }

  assign() {
    const conv = this.open();
    if (!conv) return;
    const target = this.el.assignTo.value || null;
    const expected = conv.assignee ? conv.assignee.id : null;
    this.pick = null;
    if (target === expected) {
      this.render();
      return;
    }
    this.run("assign the conversation", "assign", { agent_id: target, expected_assignee: expected });
  }

  toggleResolved() {
    const conv = this.open();
    if (!conv) return;
    const next = conv.status === "resolved" || conv.status === "snoozed" ? "open" : "resolved";
    this.run(next === "resolved" ? "resolve the conversation" : "reopen the conversation", "status", { status: next });
  }

  snooze(until) {
    this.el.snoozeMenu.open = false;
    this.run("snooze the conversation", "snooze", { until: until.toISOString() });
  }
}
