// AgentBoard: one card per agent, the run's status badge, and the final report under the cards
// once the run has finished. Cards appear as agents start. Elapsed time ticks here, once a
// second, only while the run is running and only for agents that are running: an agent that
// has ended shows `elapsed` (finished - started, from the kernel) and its clock is stopped.
// A waiting run (it asks a person: AG-UI 1.0 interrupts) shows each question under the cards
// with controls made from its response schema; answering sends
// {type: "answer", id, status: "resolved" | "cancelled", payload} to the kernel, and the
// controls stay disabled, showing "answered: ...", until the continuation clears the question.
// Tool calls show one line each under the cards: "⚙ name(args) → result".

const RUN_LABELS = { error: "failed", waiting: "waiting for you" };
const AGENT_LABELS = { error: "failed" };
const RUN_ENDED = new Set(["finished", "cancelled", "error", "interrupted", "waiting"]);

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-board");
  el.innerHTML = `
    <div class="glm-head"><span class="glm-title"></span><span class="glm-status"></span>
      <span class="glm-stats"></span></div>
    <div class="glm-board-cards"></div>
    <div class="glm-tools" hidden></div>
    <div class="glm-asks" hidden></div>
    <div class="glm-error" hidden></div>
    <div class="glm-report" hidden><div class="glm-report-title">Report</div><div class="glm-report-body"></div></div>
    <details><summary>Shared state</summary><div class="glm-state"></div></details>`;
  const $ = (sel) => el.querySelector(sel);
  const cards = new Map();
  let frame = 0;
  let report = null;
  const asks = new Map(); // interrupt id -> {node, answered, refused, tries}
  /** @param {string} id @param {"resolved" | "cancelled"} status @param {any} payload */
  const send = (id, status, payload) =>
    model.send(status === "cancelled" ? { type: "answer", id, status } : { type: "answer", id, status, payload });
  const ask = (q) => {
    // A board with nothing to answer to (a replay): the question, no controls.
    const node = askNode(q, { onAnswer: send, answerable: model.get("answerable") !== false });
    $(".glm-asks").appendChild(node);
    return { node, answered: "", refused: "", tries: 0 };
  };
  const drawAsks = () => {
    const questions = model.get("interrupts") || [];
    const ids = new Set(questions.map((q) => q.id));
    for (const [id, entry] of asks) {
      if (!ids.has(id)) {
        entry.node.remove();
        asks.delete(id);
      }
    }
    for (const q of questions) {
      let entry = asks.get(q.id);
      if (!entry) {
        entry = ask(q);
        asks.set(q.id, entry);
      }
      if (entry.answered !== q.answered || entry.refused !== q.refused || entry.tries !== q.tries) {
        entry.answered = q.answered;
        entry.refused = q.refused;
        entry.tries = q.tries;
        markAsk(entry.node, q.answered && `answered: ${q.answered}`, q.refused);
      }
    }
    $(".glm-asks").hidden = questions.length === 0;
  };
  const card = (agent) => {
    let node = cards.get(agent.name);
    if (!node) {
      node = document.createElement("div");
      node.className = "glm-card";
      node.innerHTML = `<div class="glm-card-top"><span class="glm-card-name"></span></div>
        <div class="glm-bar"><div></div></div>
        <div class="glm-card-meta"></div><div class="glm-card-message"></div>`;
      $(".glm-board-cards").appendChild(node);
      cards.set(agent.name, node);
    }
    return node;
  };
  const runEnded = () => RUN_ENDED.has(model.get("status"));
  const ticking = (a) => a.status === "running" && !runEnded();
  const elapsed = (a) => {
    if (typeof a.elapsed === "number") return `${a.elapsed.toFixed(1)} s`;
    if (!a.started || !ticking(a)) return "";
    return `${Math.max(0, Date.now() / 1000 - a.started).toFixed(1)} s`;
  };
  const draw = () => {
    frame = 0;
    const status = model.get("status");
    el.dataset.status = status === "finished" ? "done" : status;
    $(".glm-title").textContent = model.get("title") || "agents";
    $(".glm-status").textContent = RUN_LABELS[status] || status;
    $(".glm-status").dataset.status = status === "finished" ? "done" : status;
    const agents = model.get("agents");
    const counts = {};
    for (const a of agents) {
      counts[a.status] = (counts[a.status] || 0) + 1;
      const node = card(a);
      node.dataset.status = a.status;
      node.querySelector(".glm-card-name").textContent = a.name;
      node.querySelector(".glm-card-name").title = a.name;
      const pct = `${Math.round(a.progress * 100)}%`;
      node.querySelector(".glm-bar > div").style.width = pct;
      node.querySelector(".glm-card-meta").textContent =
        [AGENT_LABELS[a.status] || a.status, pct, elapsed(a), a.step].filter(Boolean).join(" · ");
      const message = node.querySelector(".glm-card-message");
      message.textContent = a.summary || "";
      message.title = a.message || "";
    }
    $(".glm-stats").textContent = Object.entries(counts).map(([s, n]) => `${n} ${AGENT_LABELS[s] || s}`).join(" · ");
    $(".glm-state").textContent = model.get("state");
    drawAsks();
    const tools = model.get("tools") || [];
    const list = $(".glm-tools");
    list.hidden = tools.length === 0;
    list.replaceChildren(
      ...tools.map((t) => {
        const line = document.createElement("div");
        line.className = "glm-tool";
        line.dataset.status = t.status;
        line.textContent = `⚙ ${t.line}`;
        line.title = t.line;
        return line;
      }),
    );
    const error = model.get("error");
    $(".glm-error").hidden = !error;
    $(".glm-error").textContent = error;
    const text = model.get("report");
    $(".glm-report").hidden = !text;
    if (text !== report) {
      report = text;
      $(".glm-report-body").innerHTML = text ? renderMarkdown(text, { final: true }) : "";
      attachCopy($(".glm-report-body")); // its code blocks' Copy buttons (one listener, once)
    }
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  for (const name of ["agents", "status", "state", "error", "title", "report", "interrupts", "tools"]) model.on(`change:${name}`, schedule);
  const tick = setInterval(() => {
    if (model.get("agents").some(ticking)) schedule();
  }, 1000);
  draw();
  return () => {
    clearInterval(tick);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
