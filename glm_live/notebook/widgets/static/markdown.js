// Markdown for streamed LLM answers, on the vendored markdown-it (vendor/markdown-it.js must be
// concatenated before this file: it defines `markdownit`). Raw HTML is never rendered (escaped),
// links go only to http/https/mailto and open in a new tab, images are shown as links (no remote
// load by surprise), and every code block gets a Copy button (see attachCopy).
//
// renderMarkdown(text, {final}) renders a whole text. With `final: true` (a stream that has
// ended) a last heading cut before its text (a last line `##`) is left out. While streaming, an
// unterminated code fence renders as a code block and a table's short rows are padded with
// empty cells (markdown-it does both).
//
// createStreamRenderer(container) renders a growing text incrementally: complete top-level
// blocks are rendered once into their own DOM nodes and never again; only the tail after the
// last safe cut (see markdownStream) is re-rendered on each update.

const md = markdownit({ html: false, linkify: false, typographer: false, breaks: false });

const escapeHtml = (s) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

// Links: markdown-it's own check (no javascript:, vbscript:, file:, data: but images) and then
// only absolute http, https and mailto URLs: a relative link would resolve against JupyterLab.
const mdValidateLink = md.validateLink;
md.validateLink = (url) => mdValidateLink(url) && /^(https?:|mailto:)/i.test(url.trim());

// `*` between digits is arithmetic, not emphasis: `2*3*4` stays as written (CommonMark would
// make the 3 italic). Elsewhere `*` is CommonMark's.
const isDigit = (c) => c >= 0x30 && c <= 0x39;
md.inline.ruler.before("emphasis", "glm_times", (state, silent) => {
  const src = state.src;
  const pos = state.pos;
  if (src.charCodeAt(pos) !== 0x2a || pos === 0 || !isDigit(src.charCodeAt(pos - 1))) return false;
  let end = pos;
  while (src.charCodeAt(end) === 0x2a) end++;
  if (!isDigit(src.charCodeAt(end))) return false;
  if (!silent) state.pending += src.slice(pos, end);
  state.pos = end;
  return true;
});

const rules = md.renderer.rules;
rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet("target", "_blank");
  tokens[idx].attrSet("rel", "noopener noreferrer");
  return self.renderToken(tokens, idx, options);
};
// An image becomes a link to it (its alt text, or its URL): nothing is fetched unasked.
rules.image = (tokens, idx, options, env, self) => {
  const token = tokens[idx];
  const src = token.attrGet("src") || "";
  const alt = self.renderInlineAsText(token.children || [], options, env) || src;
  const title = token.attrGet("title");
  return (
    `<a href="${escapeHtml(src)}" target="_blank" rel="noopener noreferrer" class="glm-image"` +
    `${title ? ` title="${escapeHtml(title)}"` : ""}>${escapeHtml(alt)}</a>`
  );
};

const COPY_BUTTON =
  '<button class="glm-copy jp-Button" type="button" aria-label="Copy code" title="Copy code"' +
  ' aria-live="polite">Copy</button>';
const withCopy = (rule) => (tokens, idx, options, env, self) =>
  `<div class="glm-code">${COPY_BUTTON}${rule(tokens, idx, options, env, self).replace(/\n$/, "")}</div>\n`;
rules.fence = withCopy(rules.fence);
rules.code_block = withCopy(rules.code_block);

// Where reference definitions are (their line, their label), for markdownStream: a definition
// applies to the whole document, before it too. Recorded only when env.glmRefs is an array.
const referenceRule = md.block.ruler.__rules__.find((r) => r.name === "reference").fn;
md.block.ruler.at("reference", (state, startLine, endLine, silent) => {
  const env = state.env;
  const before = !silent && Array.isArray(env.glmRefs) && env.references ? Object.keys(env.references) : null;
  const ok = referenceRule(state, startLine, endLine, silent);
  if (ok && before) {
    const had = new Set(before);
    for (const label of Object.keys(env.references)) {
      if (!had.has(label)) env.glmRefs.push({ line: startLine, label });
    }
  }
  return ok;
});

const LAST_HEADING_CUT = /(^|\n) {0,3}#{1,6}\s*$/; // a last line that is only `#`..`######`

/**
 * @param {string} source
 * @param {{final?: boolean}} [options] final: the text is complete (the stream has ended)
 * @returns {string} HTML
 */
function renderMarkdown(source, options = {}) {
  const env = {};
  const tokens = md.parse(source, env);
  if (options.final && LAST_HEADING_CUT.test(source)) {
    // a heading cut before its text: nothing to show (only an ATX heading with nothing in it
    // at the very end, not a `##` line inside an unterminated code fence)
    const n = tokens.length;
    if (
      n >= 3 &&
      tokens[n - 3].type === "heading_open" &&
      tokens[n - 3].level === 0 &&
      tokens[n - 3].markup.startsWith("#") &&
      tokens[n - 2].content === ""
    ) {
      tokens.length = n - 3;
    }
  }
  return md.renderer.render(tokens, md.options, env);
}

/**
 * The incremental state of a growing text, without a DOM. push(text, final) returns null when
 * nothing changed, or {reset, commits, tail}: `reset` - everything rendered so far is void (the
 * text does not extend the committed part: a resync, a regenerate; or the stream ended);
 * `commits` - HTML of blocks that are complete and never change, to append once; `tail` - the
 * HTML of the rest, which replaces the previous tail. The HTML of all commits since the last
 * reset followed by the tail is always renderMarkdown(text, {final}).
 *
 * A cut is made only before a top-level block that
 *  - follows a blank line and starts at column 0 with a character that is not a space: the
 *    blank line closes paragraphs, tables and blockquotes, a line at column 0 closes indented
 *    code and list items (a fence is closed if a block follows it: an open fence runs to the end);
 *  - does not start with a list marker character (-+*, a digit) after a list, which it could
 *    still join (making the list loose), nor with `>` after a blockquote;
 * and never so that text with a `[` is committed while a reference definition (which applies
 * to the whole document) lies after the cut; a new definition after committed text with a `[`
 * starts over. With `final` the whole text is rendered once, as renderMarkdown does.
 */
function markdownStream() {
  let committed = ""; // the text rendered into commits
  let refs = {}; // the reference definitions of the committed text
  let bracket = false; // the committed text has a `[`
  let last = null;
  let lastFinal = false;
  const start = () => {
    committed = "";
    refs = {};
    bracket = false;
  };
  return {
    push(text, final = false) {
      if (text === last && final === lastFinal) return null;
      const out = { reset: false, commits: [], tail: "" };
      if (final || lastFinal || !text.startsWith(committed)) {
        start();
        out.reset = true;
      }
      last = text;
      lastFinal = final;
      if (final) {
        out.tail = renderMarkdown(text, { final: true });
        return out;
      }
      for (;;) {
        const tail = text.slice(committed.length);
        const env = { references: { ...refs }, glmRefs: [] };
        const tokens = md.parse(tail, env);
        if (env.glmRefs.length && bracket) {
          start(); // a definition may turn a `[label]` already rendered into a link
          out.reset = true;
          out.commits = [];
          continue;
        }
        const cut = tail.includes("\r") ? null : findCut(tail, tokens, env.glmRefs);
        if (!cut) {
          out.tail = md.renderer.render(tokens, md.options, env);
          return out;
        }
        const part = tail.slice(0, cut.offset);
        out.commits.push(md.renderer.render(tokens.slice(0, cut.token), md.options, env));
        for (const r of env.glmRefs) if (r.line < cut.line) refs[r.label] = env.references[r.label];
        committed += part;
        bracket = bracket || part.includes("[");
        out.tail = md.renderer.render(tokens.slice(cut.token), md.options, env);
        return out;
      }
    },
  };
}

// The last safe cut of a text parsed into tokens: {token, line, offset} or null.
function findCut(text, tokens, refLines) {
  const starts = [0]; // line starts
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  const blocks = [];
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i].level === 0 && tokens[i].nesting >= 0 && tokens[i].map) blocks.push(i);
  }
  const firstBracket = text.indexOf("[");
  for (let k = blocks.length - 1; k >= 1; k--) {
    const line = tokens[blocks[k]].map[0];
    if (line < 1 || line >= starts.length) continue;
    const offset = starts[line];
    if (!/^[ \t]*$/.test(text.slice(starts[line - 1], offset - 1))) continue; // no blank line before
    const c = text[offset];
    if (c === undefined || c === " " || c === "\t" || c === "\n") continue;
    const prev = tokens[blocks[k - 1]].type;
    if ((prev === "bullet_list_open" || prev === "ordered_list_open") && /[-+*0-9]/.test(c)) continue;
    if (prev === "blockquote_open" && c === ">") continue;
    if (firstBracket !== -1 && firstBracket < offset && refLines.some((r) => r.line >= line)) continue;
    return { token: blocks[k], line, offset };
  }
  return null;
}

/**
 * Renders a growing text into `container` (see markdownStream): update(text, final).
 * @param {HTMLElement} container
 */
function createStreamRenderer(container) {
  const stream = markdownStream();
  let tail = [];
  attachCopy(container);
  const nodes = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html;
    return [...template.content.childNodes];
  };
  return {
    update(text, final = false) {
      const out = stream.push(text, final);
      if (!out) return;
      if (out.reset) container.replaceChildren();
      else for (const node of tail) node.remove();
      for (const html of out.commits) container.append(...nodes(html));
      tail = nodes(out.tail);
      container.append(...tail);
    },
  };
}

// Copy buttons: one delegated listener per container.
const copyAttached = new WeakSet();

function copyFallback(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.top = "-1000px";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext !== false) {
    return navigator.clipboard.writeText(text).then(
      () => true,
      () => copyFallback(text),
    );
  }
  return Promise.resolve(copyFallback(text));
}

/**
 * Makes the Copy buttons of the code blocks in `container` work (now and later ones).
 * @param {HTMLElement} container
 */
function attachCopy(container) {
  if (copyAttached.has(container)) return;
  copyAttached.add(container);
  container.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest(".glm-copy") : null;
    if (!button || !container.contains(button)) return;
    const code = button.closest(".glm-code")?.querySelector("pre code");
    if (!code) return;
    copyText(code.textContent).then((ok) => {
      button.focus({ preventScroll: true });
      const label = ok ? "Copied" : "Copy failed";
      button.textContent = label;
      button.setAttribute("aria-label", label);
      button.classList.add("glm-copied");
      clearTimeout(button._glmTimer);
      button._glmTimer = setTimeout(() => {
        button.textContent = "Copy";
        button.setAttribute("aria-label", "Copy code");
        button.classList.remove("glm-copied");
      }, 1500);
    });
  });
}
