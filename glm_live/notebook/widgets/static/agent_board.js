// AgentBoard: one card per agent, the run's status badge, and the final report under the cards
// once the run has finished. Cards appear as agents start. Elapsed time ticks here, once a
// second, only while the run is running and only for agents that are running: an agent that
// has ended shows `elapsed` (finished - started, from the kernel) and its clock is stopped.
// A waiting run (it asks a person: AG-UI 1.0 interrupts) shows each question under the cards
// with controls made from its response schema; answering sends
// {type: "answer", id, status: "resolved" | "cancelled", payload} to the kernel, and the
// controls stay disabled, showing "answered: ...", until the continuation clears the question.
// Tool calls show one line each under the cards: "⚙ name(args) → result".

/** An ISO 8601 time as the reader's local date and time to the minute (as sent, if unreadable). */
const when = (iso) => {
  const t = new Date(iso);
  return Number.isNaN(t.getTime())
    ? iso
    : t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
};

const RUN_LABELS = { error: "failed", waiting: "waiting for you" };
const AGENT_LABELS = { error: "failed" };
const RUN_ENDED = new Set(["finished", "cancelled", "error", "interrupted", "waiting"]);

/** @param {any} schema @returns {boolean} the approval shape: a boolean `approved` */
const isApproval = (schema) => schema?.properties?.approved?.type === "boolean";

/**
 * One control per top-level property of `schema` (string: text or select when it has an enum;
 * boolean: checkbox; number/integer: number input), in `form`. Returns a function that reads
 * the answer, or throws with what is missing.
 * @param {HTMLElement} form @param {any} schema @param {string[]} skip
 */
function fields(form, schema, skip = []) {
  const required = new Set(schema?.required || []);
  const readers = [];
  for (const [name, spec] of Object.entries(schema?.properties || {})) {
    if (skip.includes(name) || !spec || typeof spec !== "object") continue;
    const label = document.createElement("label");
    label.className = "glm-ask-field";
    const caption = document.createElement("span");
    caption.textContent = `${spec.title || name}${required.has(name) ? " *" : ""}`;
    if (spec.description) caption.title = spec.description;
    let input;
    if (Array.isArray(spec.enum)) {
      input = document.createElement("select");
      for (const value of spec.enum) {
        const option = document.createElement("option");
        option.value = JSON.stringify(value);
        option.textContent = String(value);
        input.appendChild(option);
      }
      readers.push((out) => { out[name] = JSON.parse(input.value); });
    } else if (spec.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      readers.push((out) => { out[name] = input.checked; });
    } else if (spec.type === "number" || spec.type === "integer") {
      input = document.createElement("input");
      input.type = "number";
      if (spec.type === "integer") input.step = "1";
      readers.push((out) => {
        if (input.value === "") {
          if (required.has(name)) throw new Error(`${name} is required`);
          return;
        }
        out[name] = spec.type === "integer" ? Number.parseInt(input.value, 10) : Number(input.value);
      });
    } else {
      input = document.createElement("input");
      input.type = "text";
      readers.push((out) => {
        if (input.value === "" && !required.has(name)) return;
        if (input.value === "") throw new Error(`${name} is required`);
        out[name] = input.value;
      });
    }
    label.append(caption, input);
    form.appendChild(label);
  }
  return () => {
    const out = {};
    for (const read of readers) read(out);
    return out;
  };
}

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
  const asks = new Map(); // interrupt id -> {node, answered, refused}
  /** @param {string} id @param {"resolved" | "cancelled"} status @param {any} payload @param {string} said */
  const send = (id, status, payload, said) => {
    const entry = asks.get(id);
    if (entry) lock(entry, `answered: ${said}`, "");
    model.send(status === "cancelled" ? { type: "answer", id, status } : { type: "answer", id, status, payload });
  };
  const lock = (entry, answered, refused) => {
    for (const c of entry.node.querySelectorAll("button, input, select")) c.disabled = Boolean(answered);
    const said = entry.node.querySelector(".glm-ask-said");
    said.textContent = answered || refused;
    said.hidden = !(answered || refused);
    said.dataset.kind = answered ? "answered" : "refused";
  };
  const ask = (q) => {
    const node = document.createElement("div");
    node.className = "glm-ask";
    node.dataset.status = "waiting";
    node.innerHTML = `<div class="glm-ask-head"><span class="glm-ask-agent"></span><span class="glm-ask-reason"></span></div>
      <div class="glm-ask-message"></div><form class="glm-ask-form"></form><div class="glm-ask-said" hidden></div>`;
    node.querySelector(".glm-ask-agent").textContent = q.agent ? `${q.agent} asks` : "the run asks";
    node.querySelector(".glm-ask-reason").textContent = [q.reason, q.expires_at && `until ${when(q.expires_at)}`].filter(Boolean).join(" · ");
    node.querySelector(".glm-ask-message").textContent = q.message || "";
    /** @type {HTMLFormElement} */
    const form = node.querySelector(".glm-ask-form");
    form.addEventListener("submit", (event) => event.preventDefault());
    if (model.get("answerable") === false) {
      // A board with nothing to answer to (a replay): the question, no controls.
      form.hidden = true;
      $(".glm-asks").appendChild(node);
      return { node, answered: "", refused: "", tries: 0 };
    }
    const button = (text, kind, onClick) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `glm-ask-button jp-Button jp-mod-styled ${kind}`;
      b.textContent = text;
      b.addEventListener("click", onClick);
      return b;
    };
    const buttons = document.createElement("div");
    buttons.className = "glm-ask-buttons";
    const schema = q.schema;
    if (isApproval(schema)) {
      const read = fields(form, schema, ["approved"]);
      const decide = (approved) => () => {
        let payload;
        try {
          payload = { ...read(), approved };
        } catch (error) {
          return lock(asks.get(q.id), "", String(error.message || error));
        }
        send(q.id, "resolved", payload, `${approved ? "approved" : "rejected"}${payload.note ? ` — ${payload.note}` : ""}`);
      };
      buttons.append(button("Approve", "glm-ask-yes", decide(true)), button("Reject", "glm-ask-no", decide(false)));
    } else if (schema && schema.type === "object" && schema.properties) {
      const read = fields(form, schema);
      buttons.append(
        button("Send", "glm-ask-yes", () => {
          let payload;
          try {
            payload = read();
          } catch (error) {
            return lock(asks.get(q.id), "", String(error.message || error));
          }
          send(q.id, "resolved", payload, JSON.stringify(payload));
        }),
        button("Decline", "glm-ask-no", () => send(q.id, "cancelled", null, "declined")),
      );
    } else {
      const text = document.createElement("input");
      text.type = "text";
      text.className = "glm-ask-text";
      text.placeholder = "your answer";
      form.appendChild(text);
      buttons.append(
        button("Send", "glm-ask-yes", () => send(q.id, "resolved", text.value, text.value)),
        button("Decline", "glm-ask-no", () => send(q.id, "cancelled", null, "declined")),
      );
    }
    form.appendChild(buttons);
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
        lock(entry, q.answered && `answered: ${q.answered}`, q.refused);
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
