// Checks the widgets' markdown (static/vendor/markdown-it.js + static/markdown.js, concatenated
// as the widgets' ES modules are) under plain Node, with no npm dependency and a minimal fake
// DOM; prints one JSON object for tests/test_markdown.py to assert on.
//   node markdown_check.mjs <static dir>
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const source =
  fs.readFileSync(path.join(dir, "vendor", "markdown-it.js"), "utf8") +
  "\n" +
  fs.readFileSync(path.join(dir, "markdown.js"), "utf8");

// ---- a minimal fake DOM: enough for createStreamRenderer and attachCopy -------------------
class FakeNode {
  constructor(html) {
    this.html = html;
    this.parent = null;
  }
  remove() {
    if (this.parent) this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  }
}
class FakeContainer {
  constructor() {
    this.children = [];
    this.listeners = [];
  }
  replaceChildren() {
    for (const n of this.children) n.parent = null;
    this.children = [];
  }
  append(...nodes) {
    for (const n of nodes) {
      n.parent = this;
      this.children.push(n);
    }
  }
  addEventListener(type, fn) {
    this.listeners.push({ type, fn });
  }
  contains() {
    return true;
  }
  get html() {
    return this.children.map((n) => n.html).join("");
  }
}
class FakeElement {}
const log = { exec: [], textareas: [], timers: [] };
const fakeDocument = {
  body: { appendChild() {} },
  createElement(tag) {
    if (tag === "template") {
      const t = { content: { childNodes: [] } };
      Object.defineProperty(t, "innerHTML", {
        set(html) {
          // one node per chunk of HTML: the container's HTML is the chunks joined
          t.content.childNodes = html ? [new FakeNode(html)] : [];
        },
      });
      return t;
    }
    const el = { tag, style: {}, setAttribute() {}, select() {}, remove() {} };
    if (tag === "textarea") log.textareas.push(el);
    return el;
  },
  execCommand(cmd) {
    log.exec.push(cmd);
    return true;
  },
};
const fakeNavigator = { clipboard: null };
const fakeWindow = { isSecureContext: true };
const fakeSetTimeout = (fn, ms) => {
  log.timers.push({ fn, ms });
  return log.timers.length;
};

const api = new Function(
  "document",
  "navigator",
  "window",
  "Element",
  "setTimeout",
  "clearTimeout",
  '"use strict";\n' + // as in the ES module the widgets load
    source +
    "\nreturn { renderMarkdown, markdownStream, createStreamRenderer, attachCopy, markdownit };",
)(fakeDocument, fakeNavigator, fakeWindow, FakeElement, fakeSetTimeout, () => {});
const { renderMarkdown, markdownStream, createStreamRenderer, attachCopy } = api;

const out = {};

// ---- single renderings ---------------------------------------------------------------------
const CASES = {
  code_literal: ["`**x**`", false],
  arithmetic: ["2*3*4", false],
  emphasis: ["*a* and **b**", false],
  nested_list: ["- a\n  - b\n  - c\n- d", false],
  script: ["<script>alert(1)</script>", false],
  img_tag: ["<img src=x onerror=alert(1)>", false],
  js_link: ["[a](javascript:alert(1))", false],
  data_link: ["[a](data:text/html;base64,PHNjcmlwdD4=)", false],
  vb_link: ["[a](vbscript:msgbox)", false],
  relative_link: ["[a](/lab/tree)", false],
  link: ["[a](https://example.com/x?y=1&z=2)", false],
  mailto: ["<someone@example.com>", false],
  image: ["![a cat](https://example.com/cat.png)", false],
  data_image: ["![x](data:image/png;base64,AAAA)", false],
  fence: ["```python\nprint('<b>')\n```", false],
  indented: ["para\n\n    code line\n", false],
  open_fence: ["text\n\n```js\nlet x = 1;\n\nlet y", false],
  final_heading: ["Partial answer.\n\n##", true],
  streaming_heading: ["Partial answer.\n\n##", false],
  final_heading_text: ["Partial answer.\n\n## Next", true],
  fence_hashes_final: ["```\n##", true],
  open_table: ["Partial answer.\n\n| Metric | Value |\n|---|---|\n| ARR | $1\n##", true],
  short_rows: ["| a | b | c |\n|---|---|---|\n| 1 |\n| 1 | 2", false],
  raw_attr: ['a <span onclick="x">b</span>', false],
};
out.render = {};
for (const [name, [text, final]] of Object.entries(CASES)) {
  out.render[name] = renderMarkdown(text, { final });
}

// ---- the incremental renderer --------------------------------------------------------------
const DOCS = {
  report: `# Account review: Globex

Globex grew **18%** this quarter; the \`renewal\` is due in *March*. See [the CRM](https://crm.example.com/globex).

## Highlights

- ARR up to $4.2M
- Two new seats
- Support tickets down

## Risks

1. Champion left in January.

   A new sponsor is being found.

2. Budget review in Q3:
   - procurement asks for 2*3*4 discounts
   - legal wants a DPA

| Metric | Value | Trend |
|---|---:|:---:|
| ARR | $4.2M | up |
| NRR | 112% |
| Seats | 340 | flat |

> Keep the renewal call short.
> Bring the usage report.

\`\`\`python
def score(account):

    return account.arr * 1.1


print(score(globex))
\`\`\`

Setext title
------------

---

Final words with a trailing heading cut:

##`,
  nested: `Intro paragraph
continues here.

- tight one
- tight two
  - nested a
  - nested b
    1. deep one
    2. deep two
- tight three

- loose after blank
- still the same list

+ another list (new marker)

Paragraph after lists.

* star list
*not emphasis start

10. ten
11. eleven

12. twelve joins the list

Text.

    indented code

    more indented code after a blank

After code.
`,
  refs: `We cite [the docs] and [RFC 9110][rfc] and [missing].

Another paragraph with [brackets] but no link.

- a list item with [the docs]

[the docs]: https://docs.example.com "The docs"

Later text uses [rfc] again.

[rfc]: https://www.rfc-editor.org/rfc/rfc9110

> quoted [the docs]
>
> [inner]: https://inner.example.com

And [inner] works.
`,
  quotes: `> first quote
> - with a list
> - of two

> second quote after a blank

Plain.

> third
lazy continuation

~~~text
tilde fence

## not a heading
~~~

\`\`\`\`md
\`\`\`
nested fence text
\`\`\`
\`\`\`\`

Tab	separated	words and a hard
break and <b>raw html</b> and &amp; &copy; entities.

Heading 1
===

Last line`,
  table_stream: `Partial answer.

| Metric | Value |
|---|---|
| ARR | $1 |
| NRR | 1.12 |

Next table:

| a | b |
|---|---|
| 1 |

| not | a table |
no delimiter row

Done.`,
  // lines that look like a new block while cut short, and are continuations when complete
  lazy: `- item one
#hashtag on a lazy line
- item two

 - an indented marker joins the list

> quote
#tag lazy in the quote

Para
#another

1. one

 2. two, indented

  10) other

Text
 # heading after three spaces? one: a heading

   - [x] task
	Tabbed code?

end`,
  crlf: "Line one\r\n\r\n- a\r\n- b\r\n\r\nLast\r\n",
};

const joined = (stream, prefixes, final) => {
  // feed the prefixes in order, as a stream would; check every state
  let commits = [];
  let commitCount = 0;
  let maxTail = 0;
  const failures = [];
  for (const prefix of prefixes) {
    const r = stream.push(prefix, final);
    if (!r) continue;
    if (r.reset) commits = [];
    commits.push(...r.commits);
    commitCount += r.commits.length;
    maxTail = Math.max(maxTail, r.tail.length);
    const got = commits.join("") + r.tail;
    const want = renderMarkdown(prefix, { final });
    if (got !== want && failures.length < 3) failures.push({ prefix, got, want });
  }
  return { failures, commitCount, maxTail };
};

out.stream = {};
for (const [name, doc] of Object.entries(DOCS)) {
  const every = (step) => {
    const ps = [];
    for (let i = 0; i <= doc.length; i += step) ps.push(doc.slice(0, i));
    ps.push(doc);
    return ps;
  };
  const result = { length: doc.length };
  // a stream growing one character at a time, and 7 at a time
  result.by1 = joined(markdownStream(), every(1), false);
  result.by7 = joined(markdownStream(), every(7), false);
  // every prefix on its own (a fresh renderer: the split of a whole text)
  const fresh = { failures: [] };
  for (const p of every(1)) {
    const r = markdownStream().push(p, false);
    const got = r.commits.join("") + r.tail;
    if (got !== renderMarkdown(p) && fresh.failures.length < 3) fresh.failures.push({ prefix: p });
  }
  result.fresh = fresh;
  // the end: final renders the whole text as renderMarkdown(text, {final: true})
  const s = markdownStream();
  for (const p of every(5)) s.push(p, false);
  const end = s.push(doc, true);
  result.final_ok = end.reset && end.commits.length === 0 && end.tail === renderMarkdown(doc, { final: true });
  result.final_again_null = s.push(doc, true) === null;
  out.stream[name] = result;
}

// speed: a 200 KB answer streamed 64 characters at a time never re-renders more than a tail,
// against rendering the whole text at each step
{
  const big = (DOCS.report.replace(/##$/, "") + "\n\n" + DOCS.nested + "\n").repeat(200).slice(0, 200_000);
  const s = markdownStream();
  let maxTail = 0;
  let commits = 0;
  let t0 = performance.now();
  for (let i = 64; i < big.length; i += 64) {
    const r = s.push(big.slice(0, i), false);
    maxTail = Math.max(maxTail, r.tail.length);
    commits += r.commits.length;
  }
  const incremental = performance.now() - t0;
  t0 = performance.now();
  for (let i = 64; i < big.length; i += 64 * 50) renderMarkdown(big.slice(0, i));
  const whole = (performance.now() - t0) * 50; // every 50th step, times 50
  out.speed = { length: big.length, maxTail, commits, incremental_ms: incremental, whole_ms: whole };
}

// a resync or a regenerate: text that does not extend the committed part starts over
{
  const s = markdownStream();
  const a = "# One\n\nfirst paragraph\n\nsecond paragraph\n\nthird";
  s.push(a, false);
  const b = "# Two\n\nanother answer\n\nmore";
  const r = s.push(b, false);
  const same = s.push(b, false);
  const after = s.push(b + " text\n\nnext", false);
  out.resync = {
    first_commits: markdownStream().push(a, false).commits.length,
    reset: r.reset,
    html_ok: r.commits.join("") + r.tail === renderMarkdown(b),
    unchanged_null: same === null,
    extend_no_reset: after.reset === false,
  };
}

// a definition arriving after a committed `[label]` starts over
{
  const s = markdownStream();
  const a = "See [docs] here.\n\nMore text.\n\nEven more";
  const first = s.push(a, false);
  const b = a + "\n\n[docs]: https://docs.example.com\n\nend";
  const r = s.push(b, false);
  out.late_definition = {
    committed_first: first.commits.length,
    reset: r.reset,
    html_ok: r.commits.join("") + r.tail === renderMarkdown(b),
    linked: (r.commits.join("") + r.tail).includes('<a href="https://docs.example.com"'),
  };
}

// the DOM wiring: committed nodes stay (the same objects), the tail is replaced
{
  const container = new FakeContainer();
  const view = createStreamRenderer(container);
  const doc = DOCS.report;
  let ok = true;
  let kept = true;
  let firstNode = null;
  for (let i = 0; i <= doc.length; i += 3) {
    view.update(doc.slice(0, i), false);
    if (container.html !== renderMarkdown(doc.slice(0, i))) ok = false;
    if (!firstNode && container.children.length > 1) firstNode = container.children[0];
    if (firstNode && container.children[0] !== firstNode) kept = false;
  }
  view.update(doc, true);
  out.dom = {
    ok,
    kept,
    committed_nodes: firstNode ? 1 : 0,
    final_ok: container.html === renderMarkdown(doc, { final: true }),
    listeners: container.listeners.length,
  };
  attachCopy(container); // twice: still one listener
  out.dom.listeners_after_second_attach = container.listeners.length;
}

// copy buttons: the delegated listener copies the code's text and says so
const flush = () => new Promise((resolve) => setImmediate(resolve));
{
  const container = new FakeContainer();
  attachCopy(container);
  const handler = container.listeners.find((l) => l.type === "click").fn;
  const makeButton = () => {
    const code = { textContent: "print('<b>')\n" };
    const wrapper = { querySelector: (sel) => (sel.includes("code") ? code : null) };
    const attrs = {};
    const classes = new Set();
    const button = Object.assign(new FakeElement(), {
      textContent: "Copy",
      attrs,
      classes,
      closest: (sel) => (sel === ".glm-copy" ? button : sel === ".glm-code" ? wrapper : null),
      setAttribute: (k, v) => (attrs[k] = v),
      focus() {},
      classList: { add: (c) => classes.add(c), remove: (c) => classes.delete(c) },
    });
    return button;
  };
  const copied = [];
  fakeNavigator.clipboard = { writeText: async (t) => copied.push(t) };
  const b1 = makeButton();
  handler({ target: b1 });
  await flush();
  const during = { text: b1.textContent, label: b1.attrs["aria-label"] };
  const timer = log.timers.at(-1);
  timer.fn();
  // no clipboard API (a page that is not a secure context): a hidden textarea and execCommand
  fakeNavigator.clipboard = undefined;
  const b2 = makeButton();
  handler({ target: b2 });
  await flush();
  // a click elsewhere in the container does nothing
  handler({ target: Object.assign(new FakeElement(), { closest: () => null }) });
  await flush();
  out.copy = {
    clipboard: copied,
    during,
    timer_ms: timer.ms,
    after: { text: b1.textContent, label: b1.attrs["aria-label"] },
    fallback_exec: log.exec,
    fallback_value: log.textareas.map((t) => t.value),
    fallback_text: b2.textContent,
  };
}

// the vendored bundle: the pinned version, and a body matching the sha256 in its header
{
  const vendored = fs.readFileSync(path.join(dir, "vendor", "markdown-it.js"), "utf8");
  const lines = vendored.split("\n");
  const header = lines.filter((l) => l.startsWith("//"));
  const body = lines.slice(header.length).join("\n");
  const { createHash } = await import("node:crypto");
  out.vendor = {
    header,
    sha256: createHash("sha256").update(body).digest("hex"),
    is_function: typeof api.markdownit === "function",
  };
}

console.log(JSON.stringify(out));
