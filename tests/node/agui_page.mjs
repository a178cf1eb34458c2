// A web page's AG-UI panel, CopilotKit style: the official client (@ag-ui/client's HttpAgent)
// runs an agent of the glm_live runtime from a page on another origin, and the page draws each
// agent's progress, the conversation and the final state as the events arrive.
//
// Bundled for the browser by tests/test_agui_node.py (esbuild: one file, no imports left):
//   esbuild agui_page.mjs --bundle --format=esm --platform=browser --outfile=...
// The page calls window.runAgentPanel({url, token, account, sim, root}); it resolves with a
// summary ({ok, error, kinds, state}) once the run ends.
import { HttpAgent } from "@ag-ui/client";

const CSS = `
.glm-live-agui { font: 14px/1.45 "DejaVu Sans", system-ui, sans-serif; color: #1f2328;
  width: 760px; margin: 24px; border: 1px solid #d0d7de; border-radius: 12px;
  box-shadow: 0 4px 18px rgba(0,0,0,.08); overflow: hidden; background: #fff; }
.glm-live-agui header { display: flex; justify-content: space-between; align-items: center;
  padding: 12px 16px; background: #0f172a; color: #f8fafc; }
.glm-live-agui header .run { font-size: 12px; opacity: .75; }
.glm-live-agui .status { font-size: 12px; padding: 2px 10px; border-radius: 999px;
  background: #e2e8f0; color: #0f172a; }
.glm-live-agui .status[data-status="running"] { background: #dbeafe; color: #1e40af; }
.glm-live-agui .status[data-status="done"] { background: #dcfce7; color: #166534; }
.glm-live-agui .status[data-status="error"] { background: #fee2e2; color: #991b1b; }
.glm-live-agui .agents { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px;
  padding: 14px 16px; background: #f8fafc; border-bottom: 1px solid #e2e8f0; }
.glm-live-agui .agent { border: 1px solid #e2e8f0; border-radius: 10px; padding: 10px;
  background: #fff; }
.glm-live-agui .agent .top { display: flex; justify-content: space-between; gap: 6px; }
.glm-live-agui .agent .name { font-weight: 600; }
.glm-live-agui .bar { height: 6px; border-radius: 3px; background: #e2e8f0; margin: 8px 0 6px; }
.glm-live-agui .bar > div { height: 100%; border-radius: 3px; background: #6366f1;
  width: 0; transition: width .2s; }
.glm-live-agui .agent[data-status="done"] .bar > div { background: #22c55e; }
.glm-live-agui .agent .note { font-size: 12px; color: #57606a; min-height: 1.4em; }
.glm-live-agui .chat { padding: 12px 16px; max-height: 300px; overflow: auto; }
.glm-live-agui .msg { margin: 0 0 10px; padding: 8px 12px; border-radius: 10px;
  background: #f1f5f9; white-space: pre-wrap; }
.glm-live-agui .msg.user { background: #eef2ff; margin-left: 80px; }
.glm-live-agui .msg .who { display: block; font-size: 11px; font-weight: 600; color: #6366f1;
  margin-bottom: 2px; }
.glm-live-agui .state { margin: 0; padding: 10px 16px; border-top: 1px solid #e2e8f0;
  background: #f8fafc; display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px;
  font-size: 13px; }
.glm-live-agui .state dt { color: #57606a; }
.glm-live-agui .state dd { margin: 0; font-family: "DejaVu Sans Mono", monospace; }
`;

/** @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text] */
function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** @param {unknown} value */
function short(value) {
  if (value && typeof value === "object") {
    const v = /** @type {Record<string, unknown>} */ (value);
    if ("status" in v) return String(v.status);
    if ("level" in v) return `${v.level} (${v.score})`;
    return JSON.stringify(value).slice(0, 60);
  }
  return String(value);
}

/**
 * @param {{url: string, token: string, account: string, sim?: object, root: HTMLElement}} args
 */
async function runAgentPanel({ url, token, account, sim, root }) {
  const style = el("style");
  style.textContent = CSS;
  document.head.append(style);
  const panel = el("section", { class: "glm-live-agui" });
  const header = el("header");
  const title = el("div");
  title.append(el("strong", {}, "account-review"), el("div", { class: "run" }, url));
  const status = el("span", { class: "status", "data-status": "idle", id: "run-status" }, "idle");
  header.append(title, status);
  const agents = el("div", { class: "agents" });
  const chat = el("div", { class: "chat" });
  const state = el("dl", { class: "state", id: "state" });
  panel.append(header, agents, chat, state);
  root.append(panel);

  /** @type {Map<string, HTMLElement>} subagentRunId -> card */
  const cards = new Map();
  /** @type {Map<string, HTMLElement>} messageId -> text node holder */
  const bubbles = new Map();
  const kinds = /** @type {string[]} */ ([]);

  /** Activity content by message id (AG-UI 1.0 progress). @type {Map<string, any>} */
  const activities = new Map();
  /** @param {any} e @param {any} c */
  const showActivity = (e, c) => {
    // The runtime names a progress activity "progress-<subagent run id>".
    const id = e.subagentRunId ?? String(e.messageId ?? "").replace(/^progress-/, "");
    const fraction = typeof c.fraction === "number" ? c.fraction : c.progress;
    if (id) update(id, { fraction, message: c.message });
  };
  /** @param {string} id @param {{fraction?: number, message?: string, status?: string}} what */
  const update = (id, what) => {
    const card = cards.get(id);
    if (!card) return;
    if (what.status) {
      card.dataset.status = what.status;
      /** @type {HTMLElement} */ (card.querySelector(".status")).textContent = what.status;
      /** @type {HTMLElement} */ (card.querySelector(".status")).dataset.status = what.status;
    }
    if (typeof what.fraction === "number") {
      card.dataset.progress = String(what.fraction);
      /** @type {HTMLElement} */ (card.querySelector(".bar > div")).style.width =
        `${Math.round(what.fraction * 100)}%`;
    }
    if (what.message) /** @type {HTMLElement} */ (card.querySelector(".note")).textContent = what.message;
  };

  const drawState = (/** @type {Record<string, unknown>} */ s) => {
    state.replaceChildren();
    for (const [k, v] of Object.entries(s ?? {})) {
      state.append(el("dt", {}, k), el("dd", { "data-key": k }, short(v)));
    }
  };

  const agent = new HttpAgent({
    url,
    headers: { Authorization: `Bearer ${token}` },
    initialMessages: [{ id: "u1", role: "user", content: `Review the ${account} account` }],
  });
  const user = el("p", { class: "msg user" }, `Review the ${account} account`);
  chat.append(user);
  status.dataset.status = status.textContent = "running";

  try {
    await agent.runAgent(
      { forwardedProps: { inputs: { account }, sim: sim ?? {} } },
      {
        onEvent({ event }) {
          kinds.push(event.type);
        },
        onSubagentStartedEvent({ event }) {
          const card = el("div", { class: "agent", "data-agent": event.name, "data-status": "running" });
          const top = el("div", { class: "top" });
          top.append(
            el("span", { class: "name" }, event.name),
            el("span", { class: "status", "data-status": "running" }, "running"),
          );
          const bar = el("div", { class: "bar" });
          bar.append(el("div"));
          card.append(top, bar, el("div", { class: "note" }));
          agents.append(card);
          cards.set(event.subagentRunId, card);
        },
        onSubagentFinishedEvent({ event }) {
          update(event.subagentRunId, { status: "done", fraction: 1 });
        },
        onSubagentErrorEvent({ event }) {
          update(event.subagentRunId, { status: "error", message: event.message });
        },
        onCustomEvent({ event }) {
          const e = /** @type {any} */ (event);
          if (e.name === "progress" && e.subagentRunId) update(e.subagentRunId, e.value ?? {});
        },
        onActivitySnapshotEvent({ event }) {
          // Progress as AG-UI 1.0 activity: a snapshot, then deltas (JSON Patch) to it.
          const e = /** @type {any} */ (event);
          const content = { ...(e.content ?? {}) };
          activities.set(e.messageId, content);
          showActivity(e, content);
        },
        onActivityDeltaEvent({ event }) {
          const e = /** @type {any} */ (event);
          const content = activities.get(e.messageId);
          if (!content) return; // a delta before its snapshot: nothing to apply it to
          for (const op of e.patch ?? []) {
            const key = String(op.path ?? "").replace(/^\//, "");
            if ((op.op === "replace" || op.op === "add") && key && !key.includes("/")) {
              content[key] = op.value;
            }
          }
          showActivity(e, content);
        },
        onStepStartedEvent({ event }) {
          const e = /** @type {any} */ (event);
          if (e.subagentRunId) update(e.subagentRunId, { message: `step: ${e.stepName}` });
        },
        onTextMessageStartEvent({ event }) {
          const who = event.name ?? event.role ?? "assistant";
          const bubble = el("p", { class: "msg", "data-message": event.messageId, "data-name": who });
          bubble.append(el("span", { class: "who" }, who));
          bubble.append(document.createTextNode(""));
          chat.append(bubble);
          bubbles.set(event.messageId, bubble);
        },
        onTextMessageContentEvent({ event }) {
          const bubble = bubbles.get(event.messageId);
          if (bubble?.lastChild) bubble.lastChild.textContent += event.delta;
          chat.scrollTop = chat.scrollHeight;
        },
        onStateChanged({ state: s }) {
          drawState(s);
        },
      },
    );
    drawState(agent.state);
    status.dataset.status = status.textContent = "done";
    return { ok: true, error: null, kinds, state: agent.state };
  } catch (error) {
    status.dataset.status = status.textContent = "error";
    return { ok: false, error: String(error), kinds, state: agent.state };
  }
}

// @ts-expect-error: the page's entry point, for the test (and a person) to call.
window.runAgentPanel = runAgentPanel;
