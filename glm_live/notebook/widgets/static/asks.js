// A run's question to a person (an AG-UI 1.0 interrupt) as a node with its controls, shared by
// the agent board and the chat (their modules are this file joined with theirs, so these are
// plain top-level names). The controls come from the question's response schema: the approval
// shape (a boolean `approved`) gives Approve / Reject plus a control per other property (a
// note, say); another object schema gives a control per property with Send / Decline; no schema
// gives a free-text answer with Send / Decline. The form keeps JupyterLab's notebook shortcuts
// out while one types (data-lm-suppress-shortcuts). The widget sends the answer to its kernel:
// askNode calls onAnswer(id, "resolved" | "cancelled", payload, said), `said` being the answer
// as the node repeats it ("approved — ship it").

/** An ISO 8601 time as the reader's local date and time to the minute (as sent, if unreadable). */
const when = (iso) => {
  const t = new Date(iso);
  return Number.isNaN(t.getTime())
    ? iso
    : t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
};

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
      input.className = "glm-ask-text";
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

/**
 * Show what became of a question: `answered` ("answered: approved") disables its controls;
 * `refused` (the kernel's word on an answer it would not take) leaves them open for another try.
 * @param {HTMLElement} node @param {string} answered @param {string} refused
 */
function markAsk(node, answered, refused) {
  for (const c of node.querySelectorAll("button, input, select")) c.disabled = Boolean(answered);
  node.dataset.status = answered ? "done" : "waiting";
  const said = node.querySelector(".glm-ask-said");
  said.textContent = answered || refused;
  said.hidden = !(answered || refused);
  said.dataset.kind = answered ? "answered" : "refused";
}

/**
 * A question's node (.glm-ask): who asks and why (and until when), the message, and unless
 * `answerable` is false (a replay: nothing to answer to) the controls. Answering marks the node
 * answered and calls onAnswer; an answer the form cannot read (a required field left empty)
 * shows why instead.
 * @param {any} q {id, agent, reason, message, schema, expires_at}
 * @param {{onAnswer?: (id: string, status: "resolved" | "cancelled", payload: any, said: string) => void, answerable?: boolean}} options
 * @returns {HTMLElement}
 */
function askNode(q, { onAnswer = () => {}, answerable = true } = {}) {
  const node = document.createElement("div");
  node.className = "glm-ask";
  node.dataset.status = "waiting";
  node.innerHTML = `<div class="glm-ask-head"><span class="glm-ask-agent"></span><span class="glm-ask-reason"></span></div>
    <div class="glm-ask-message"></div><form class="glm-ask-form" data-lm-suppress-shortcuts="true"></form>
    <div class="glm-ask-said" hidden></div>`;
  node.querySelector(".glm-ask-agent").textContent = q.agent ? `${q.agent} asks` : "the run asks";
  node.querySelector(".glm-ask-reason").textContent = [q.reason, q.expires_at && `until ${when(q.expires_at)}`].filter(Boolean).join(" · ");
  node.querySelector(".glm-ask-message").textContent = q.message || "";
  /** @type {HTMLFormElement} */
  const form = node.querySelector(".glm-ask-form");
  form.addEventListener("submit", (event) => event.preventDefault());
  if (answerable === false) {
    form.hidden = true; // the question, no controls
    return node;
  }
  const answer = (status, payload, said) => {
    markAsk(node, `answered: ${said}`, "");
    onAnswer(q.id, status, payload, said);
  };
  /** @param {() => any} read the payload, or throws with what is missing */
  const readOrSay = (read) => {
    try {
      return { payload: read() };
    } catch (error) {
      markAsk(node, "", String(error.message || error));
      return null;
    }
  };
  const control = (text, kind, onClick) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `glm-ask-button jp-Button jp-mod-styled ${kind}`;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  };
  const decline = () => control("Decline", "glm-ask-no", () => answer("cancelled", null, "declined"));
  const buttons = document.createElement("div");
  buttons.className = "glm-ask-buttons";
  const schema = q.schema;
  if (isApproval(schema)) {
    const read = fields(form, schema, ["approved"]);
    const decide = (approved) => () => {
      const got = readOrSay(() => ({ ...read(), approved }));
      if (!got) return;
      const { payload } = got;
      answer("resolved", payload, `${approved ? "approved" : "rejected"}${payload.note ? ` — ${payload.note}` : ""}`);
    };
    buttons.append(control("Approve", "glm-ask-yes", decide(true)), control("Reject", "glm-ask-no", decide(false)));
  } else if (schema && schema.type === "object" && schema.properties) {
    const read = fields(form, schema);
    buttons.append(
      control("Send", "glm-ask-yes", () => {
        const got = readOrSay(read);
        if (got) answer("resolved", got.payload, JSON.stringify(got.payload));
      }),
      decline(),
    );
  } else {
    const text = document.createElement("input");
    text.type = "text";
    text.className = "glm-ask-text";
    text.placeholder = "your answer";
    text.setAttribute("aria-label", "Your answer");
    form.appendChild(text);
    buttons.append(control("Send", "glm-ask-yes", () => answer("resolved", text.value, text.value)), decline());
  }
  form.appendChild(buttons);
  return node;
}
