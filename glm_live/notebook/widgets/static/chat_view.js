// ChatView: a conversation, the answer streaming in, and an input box. The kernel sends the
// messages (`messages`, at message boundaries only) and the streaming answer's text as ordered
// deltas in `_delta` ({seq, text, reasoning}) for the message `live_id`; at each boundary the
// live answer's full text comes once (`live_text`, `live_reasoning`, `live_seq`) and deltas go
// on from there. A missing seq asks for a resync. The live answer is drawn at most once per
// animation frame (incrementally with createStreamRenderer when markdown-it is vendored).
// The history is an ARIA log, busy while an answer streams: a finished answer is announced
// once, not every token. Buttons send {type: "send" | "stop" | "regenerate" | "edit" | "clear"}.
// An agent's run that waits for a person shows its questions under its answer (the agent
// board's .glm-ask-* controls); answering sends {type: "answer", id, status, payload}.

const STATUS_LABELS = { error: "failed", waiting: "waiting for you" };
const ENDED = new Set(["done", "cancelled", "error", "interrupted"]);
const num = (n) => (n ?? 0).toLocaleString("en-US");
const plural = (n, word) => `${num(n)} ${word}${n === 1 ? "" : "s"}`;
let nextId = 0;

/** The footer line: "3 answers · 1,234 in · 567 out · 89 reasoning · 0 cached · $0.0012". */
function totalsLine(t) {
  if (!t || !t.answers) return "";
  if (!t.total_tokens && typeof t.cost !== "number") return `${plural(t.answers, "answer")} · no token usage reported`;
  const parts = [
    plural(t.answers, "answer"),
    `${num(t.prompt_tokens)} in`,
    `${num(t.completion_tokens)} out`,
    `${num(t.reasoning_tokens)} reasoning`,
    `${num(t.cached_tokens)} cached`,
  ];
  if (typeof t.cost === "number") {
    const digits = t.cost >= 1 ? 2 : 4;
    const currency = t.currency || "USD";
    parts.push(currency === "USD" ? `$${t.cost.toFixed(digits)}` : `${t.cost.toFixed(digits)} ${currency}`);
  }
  return parts.join(" · ");
}

/** An answer's usage as one line: "26 tokens: 6 in · 20 out". */
function usageLine(u) {
  if (!u) return "";
  const parts = [`${num(u.prompt_tokens)} in`, `${num(u.completion_tokens)} out`];
  if (u.reasoning_tokens) parts.push(`${num(u.reasoning_tokens)} reasoning`);
  if (u.cached_tokens) parts.push(`${num(u.cached_tokens)} cached`);
  return parts.join(" · ");
}

/**
 * Enter calls `enter`; Shift+Enter puts a new line at the cursor (by hand: JupyterLab's
 * notebook swallows the key's default there); Enter while an IME composes is left alone.
 * @param {HTMLTextAreaElement} area @param {() => void} enter
 */
const onEnter = (area, enter) =>
  area.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (!event.shiftKey) return enter();
    area.setRangeText("\n", area.selectionStart, area.selectionEnd, "end");
    area.dispatchEvent(new Event("input", { bubbles: true }));
  });

const button = (cls, label, title) => {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `${cls} glm-chat-button jp-Button jp-mod-styled`;
  b.textContent = label;
  if (title) {
    b.title = title;
    b.setAttribute("aria-label", title);
  }
  return b;
};

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  const uid = `glm-chat-${++nextId}`;
  el.classList.add("glm-live", "glm-chat");
  el.innerHTML = `
    <div class="glm-head glm-chat-head">
      <span class="glm-title"></span>
      <span class="glm-badge glm-sim" hidden>simulated</span>
      <span class="glm-chat-model"></span>
      <span class="glm-chat-endpoint"></span>
    </div>
    <div class="glm-chat-log" role="log" aria-live="polite" aria-label="Conversation"></div>
    <div class="glm-chat-notice" role="status" hidden></div>
    <form class="glm-chat-compose" data-lm-suppress-shortcuts="true">
      <label class="glm-visually-hidden" for="${uid}-input">Message</label>
      <textarea id="${uid}-input" class="glm-chat-input" rows="2" aria-label="Message"
        placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
      <div class="glm-chat-controls"></div>
    </form>
    <div class="glm-chat-foot"><span class="glm-chat-totals"></span></div>`;
  const $ = (sel) => el.querySelector(sel);
  const log = $(".glm-chat-log");
  const input = $(".glm-chat-input");
  const send = button("glm-chat-send", "Send", "Send the message");
  const stop = button("glm-chat-stop", "Stop", "Stop the answer");
  const clear = button("glm-chat-clear", "Clear", "Clear the conversation");
  $(".glm-chat-controls").append(send, stop, clear);

  // The live answer: its text so far and the delta seq it is at.
  let liveId = model.get("live_id");
  let text = model.get("live_text");
  let reasoning = model.get("live_reasoning");
  let seq = model.get("live_seq");
  let frame = 0;
  let pending = false;
  /** @type {Map<string, {node: HTMLElement, sig: string, stream?: any}>} */
  const nodes = new Map();
  let editing = null; // the id of the user message being edited

  const interactive = () => model.get("interactive");
  const streaming = () => model.get("status") === "streaming";

  // -- one message ---------------------------------------------------------------------------

  const bodyOf = (m) => {
    const body = document.createElement("div");
    body.className = "glm-chat-body glm-body";
    if (m.role === "assistant") body.innerHTML = renderMarkdown(m.content, { final: true });
    else body.textContent = m.content;
    if (m.role === "assistant" && typeof attachCopy === "function") attachCopy(body);
    return body;
  };

  const messageNode = (m, last) => {
    const asks = model.get("asks") || [];
    const asked = m.id === model.get("asks_for") && asks.length > 0;
    // An answer whose run waits for a person says so, until the run goes on.
    const status = asked && model.get("status") === "waiting" ? "waiting" : m.status;
    const node = document.createElement("div");
    node.className = "glm-chat-msg";
    node.dataset.role = m.role;
    node.dataset.status = status;
    node.dataset.id = m.id;
    const meta = document.createElement("div");
    meta.className = "glm-chat-meta";
    const who = document.createElement("span");
    who.className = "glm-chat-who";
    const names = { assistant: m.model || "assistant", user: "you", tool: `tool ${m.name}`, system: "system" };
    who.textContent = names[m.role] || m.role;
    meta.append(who);
    if (m.role === "assistant") {
      const pill = document.createElement("span");
      pill.className = "glm-status";
      pill.dataset.status = status;
      pill.textContent = STATUS_LABELS[status] || status;
      const stats = document.createElement("span");
      stats.className = "glm-chat-usage glm-stats";
      stats.textContent = usageLine(m.usage);
      meta.append(pill, stats);
    }
    node.append(meta);
    if (m.role === "system") {
      const details = document.createElement("details");
      details.className = "glm-chat-system";
      details.innerHTML = "<summary>System prompt</summary>";
      details.append(bodyOf(m));
      node.append(details);
      return node;
    }
    const r = document.createElement("details");
    r.className = "glm-reasoning";
    r.innerHTML = '<summary>Reasoning</summary><div class="glm-reasoning-text"></div>';
    r.querySelector(".glm-reasoning-text").textContent = m.reasoning;
    r.hidden = !m.reasoning;
    node.append(r);
    if (m.tool_calls.length) {
      const tools = document.createElement("div");
      tools.className = "glm-chat-tools";
      for (const call of m.tool_calls) {
        const line = document.createElement("div");
        line.className = "glm-tool";
        line.dataset.status = call.result === null ? "running" : "done";
        line.textContent = `⚙ ${call.name}(${call.arguments}) → ${call.result === null ? "…" : call.result}`;
        line.title = line.textContent;
        tools.append(line);
      }
      node.append(tools);
    }
    node.append(bodyOf(m));
    if (asked) node.append(asksNode(asks));
    if (m.error) {
      const error = document.createElement("div");
      error.className = m.status === "error" ? "glm-error" : "glm-detail";
      error.textContent = m.error;
      node.append(error);
    }
    if (interactive() && model.get("status") === "idle") {
      const actions = document.createElement("div");
      actions.className = "glm-chat-actions";
      if (m.role === "user") {
        const edit = button("glm-chat-edit", "Edit", "Edit this message and answer again");
        edit.addEventListener("click", () => startEdit(m, node));
        actions.append(edit);
      } else if (m.role === "assistant" && last) {
        const again = button("glm-chat-regenerate", "Regenerate", "Answer the last message again");
        again.addEventListener("click", () => model.send({ type: "regenerate" }));
        actions.append(again);
      }
      if (actions.childElementCount) node.append(actions);
    }
    return node;
  };

  // A waiting run's questions, under its answer: the agent board's controls (asks.js).
  /** @param {string} id @param {"resolved" | "cancelled"} status @param {any} payload */
  const answer = (id, status, payload) =>
    model.send(status === "cancelled" ? { type: "answer", id, status } : { type: "answer", id, status, payload });
  const asksNode = (asks) => {
    const box = document.createElement("div");
    box.className = "glm-asks glm-chat-asks";
    for (const q of asks) {
      const node = askNode(q, { onAnswer: answer });
      if (q.answered || q.refused) markAsk(node, q.answered && `answered: ${q.answered}`, q.refused);
      box.append(node);
    }
    return box;
  };

  const startEdit = (m, node) => {
    editing = m.id;
    const box = document.createElement("div");
    box.className = "glm-chat-editor";
    box.dataset.lmSuppressShortcuts = "true"; // JupyterLab's notebook keys stay out of it
    const area = document.createElement("textarea");
    area.className = "glm-chat-edit-input";
    area.setAttribute("aria-label", "Edit the message");
    area.value = m.content;
    area.rows = Math.min(8, Math.max(2, m.content.split("\n").length));
    const save = button("glm-chat-save", "Save & send", "Save the message and answer again");
    const cancel = button("glm-chat-cancel", "Cancel", "Keep the message as it was");
    const done = () => {
      editing = null;
      node.remove(); // drawn again, as it now is
      nodes.delete(m.id);
      draw();
    };
    save.addEventListener("click", () => {
      model.send({ type: "edit", index: m.index, text: area.value });
      done();
      input.focus();
    });
    cancel.addEventListener("click", () => {
      done();
      nodes.get(m.id)?.node.querySelector(".glm-chat-edit")?.focus();
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel.click();
    });
    onEnter(area, () => save.click());
    const row = document.createElement("div");
    row.className = "glm-chat-editor-buttons";
    row.append(save, cancel);
    box.append(area, row);
    node.querySelector(".glm-chat-body").replaceWith(box);
    node.querySelector(".glm-chat-actions")?.remove();
    area.focus();
  };

  // -- the live answer -----------------------------------------------------------------------

  const liveStats = () => {
    const rate = model.get("live_tokens_per_s");
    return plural(model.get("live_tokens"), "token") + (rate ? ` · ${rate.toFixed(1)} tok/s` : "");
  };

  const drawLive = () => {
    frame = 0;
    const entry = nodes.get(liveId);
    if (!entry) return;
    const node = entry.node;
    const body = node.querySelector(".glm-chat-body");
    if (typeof createStreamRenderer === "function") {
      if (!entry.stream) {
        body.innerHTML = "";
        entry.stream = createStreamRenderer(body);
      }
      entry.stream.update(text, false);
    } else {
      body.innerHTML = renderMarkdown(text, { final: false });
    }
    const r = node.querySelector(".glm-reasoning");
    r.hidden = !reasoning;
    r.querySelector(".glm-reasoning-text").textContent = reasoning;
    node.querySelector(".glm-chat-usage").textContent = liveStats();
    // Follow the answer as it grows, unless the reader scrolled up.
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 80) log.scrollTop = log.scrollHeight;
  };
  const scheduleLive = () => {
    if (!frame) frame = requestAnimationFrame(drawLive);
  };

  // -- everything else -----------------------------------------------------------------------

  const draw = () => {
    const messages = model.get("messages") || [];
    const busy = streaming();
    const lastAnswer = [...messages].reverse().find((m) => m.role === "assistant");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const seen = new Set();
    let previous = null;
    for (const m of messages) {
      seen.add(m.id);
      const last = lastAnswer !== undefined && m.id === lastAnswer.id && m.index === messages[messages.length - 1].index;
      const asks = m.id === model.get("asks_for") ? model.get("asks") : null;
      const sig = JSON.stringify([m, last, model.get("status"), interactive(), asks]);
      let entry = nodes.get(m.id);
      if (!entry || (entry.sig !== sig && editing !== m.id)) {
        const node = messageNode(m, last);
        if (entry) entry.node.replaceWith(node);
        entry = { node, sig };
        nodes.set(m.id, entry);
        if (m.id === liveId && m.status === "streaming") scheduleLive();
      }
      // In order: after the previous message.
      const want = previous ? previous.nextSibling : log.firstChild;
      if (want !== entry.node) log.insertBefore(entry.node, want);
      previous = entry.node;
    }
    for (const [id, entry] of nodes) {
      if (!seen.has(id)) {
        entry.node.remove();
        nodes.delete(id);
      }
    }
    if (editing && !seen.has(editing)) editing = null;
    log.setAttribute("aria-busy", busy ? "true" : "false");
    log.hidden = messages.length === 0;
    el.dataset.status = model.get("status");
    $(".glm-title").textContent = model.get("title") || "Chat";
    $(".glm-sim").hidden = !model.get("simulated");
    $(".glm-chat-model").textContent = model.get("model");
    $(".glm-chat-endpoint").textContent = model.get("endpoint");
    $(".glm-chat-compose").hidden = !interactive();
    send.hidden = busy;
    stop.hidden = !busy;
    clear.disabled = busy || messages.length === 0;
    const notice = model.get("notice");
    $(".glm-chat-notice").hidden = !notice;
    $(".glm-chat-notice").textContent = notice;
    $(".glm-chat-totals").textContent = totalsLine(model.get("totals"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  };

  // The live answer's full text, then the deltas after it: both may change in one update.
  const sync = () => {
    pending = false;
    const id = model.get("live_id");
    const fullSeq = model.get("live_seq");
    if (id !== liveId || fullSeq >= seq) {
      liveId = id;
      text = model.get("live_text");
      reasoning = model.get("live_reasoning");
      seq = fullSeq;
    }
    const d = model.get("_delta");
    if (d && typeof d.seq === "number" && d.seq > seq) {
      if (d.seq !== seq + 1) {
        model.send({ type: "resync", have: seq, got: d.seq });
      } else {
        text += d.text || "";
        reasoning += d.reasoning || "";
        seq = d.seq;
      }
    }
    if (liveId) scheduleLive();
  };
  const queueSync = () => {
    if (!pending) {
      pending = true;
      queueMicrotask(sync);
    }
  };

  const submit = () => {
    const value = input.value;
    if (!value.trim() || streaming()) return;
    model.send({ type: "send", text: value });
    input.value = "";
    input.focus();
  };
  send.addEventListener("click", submit);
  stop.addEventListener("click", () => {
    model.send({ type: "stop" });
    input.focus();
  });
  clear.addEventListener("click", () => {
    model.send({ type: "clear" });
    input.focus();
  });
  $(".glm-chat-compose").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  onEnter(input, submit);

  const onStatus = () => {
    const wasFocused = el.contains(document.activeElement);
    draw();
    // Stop went away under the focus: back to the input.
    if (wasFocused && !el.contains(document.activeElement) && interactive()) input.focus();
  };
  model.on("change:messages", draw);
  model.on("change:status", onStatus);
  for (const name of ["title", "model", "endpoint", "simulated", "interactive", "notice", "totals", "asks", "asks_for"]) {
    model.on(`change:${name}`, draw);
  }
  for (const name of ["_delta", "live_id", "live_seq", "live_text"]) model.on(`change:${name}`, queueSync);
  model.on("change:live_tokens", scheduleLive);
  draw();
  const current = model.get("_delta");
  if (current && typeof current.seq === "number" && current.seq > seq) {
    model.send({ type: "resync", have: seq, got: current.seq }); // joined mid-stream
  }
  if (liveId) scheduleLive();
  return () => {
    if (frame) cancelAnimationFrame(frame);
    model.off("change:messages", draw);
    model.off("change:status", onStatus);
    for (const name of ["title", "model", "endpoint", "simulated", "interactive", "notice", "totals", "asks", "asks_for"]) {
      model.off(`change:${name}`, draw);
    }
    for (const name of ["_delta", "live_id", "live_seq", "live_text"]) model.off(`change:${name}`, queueSync);
    model.off("change:live_tokens", scheduleLive);
  };
}

export default { render };
