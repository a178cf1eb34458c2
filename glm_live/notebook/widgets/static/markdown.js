// A small, safe markdown renderer for streamed LLM answers (no network, no dependencies).
// Everything is HTML-escaped first; only the markup below is produced: headings, paragraphs,
// bold/italic/inline code, links (http/https only), bullet and numbered lists, tables,
// fenced code blocks, blockquotes and rules. An unterminated code fence (mid-stream) renders
// as a code block too, and every table row has the header's cells (short rows are padded,
// extra cells joined), so a table is never drawn ragged. With `{final: true}` (a stream that
// has ended, however) a last table row cut before its closing pipe is closed and kept, and a
// last heading cut before its text (`##`) is left out.

const escapeHtml = (s) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function inline(text) {
  let out = escapeHtml(text);
  out = out.replace(/`([^`]+)`/g, "<code>$1</code>");
  out = out.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  out = out.replace(
    /\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g,
    '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>',
  );
  return out;
}

function table(rows) {
  const cells = (row) => row.replace(/^\s*\|/, "").replace(/\|\s*$/, "").split("|").map((c) => c.trim());
  const head = cells(rows[0]);
  const fit = (row) => {
    const out = row.slice(0, head.length);
    if (row.length > head.length) out[head.length - 1] = row.slice(head.length - 1).join(" | ");
    while (out.length < head.length) out.push("");
    return out;
  };
  const body = rows.slice(2).map(cells).map(fit);
  return (
    "<table><thead><tr>" + head.map((c) => `<th>${inline(c)}</th>`).join("") +
    "</tr></thead><tbody>" +
    body.map((r) => "<tr>" + r.map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>").join("") +
    "</tbody></table>"
  );
}

/**
 * @param {string} source
 * @param {{final?: boolean}} [options] final: the text is complete (the stream has ended)
 * @returns {string} HTML
 */
export function renderMarkdown(source, options = {}) {
  const lines = source.replace(/\s+$/, "").split("\n");
  if (options.final && lines.length > 1 && /^\s*#{1,6}\s*$/.test(lines[lines.length - 1])) {
    lines.pop(); // a heading cut before its text: nothing to show
  }
  const last = lines.length - 1;
  if (options.final && /^\s*\|/.test(lines[last]) && !/\|\s*$/.test(lines[last])) {
    lines[last] += " |"; // a row cut before its closing pipe
  }
  const html = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w+-]*)/);
    if (fence) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].startsWith("```")) code.push(lines[i++]);
      i += 1;
      html.push(`<pre><code class="lang-${escapeHtml(fence[1] || "text")}">${escapeHtml(code.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      const level = heading[1].length;
      html.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|?[\s:|-]+\|?\s*$/.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const rows = [];
      while (i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i])) rows.push(lines[i++]);
      html.push(table(rows));
      continue;
    }
    if (/^\s*([-*+])\s+/.test(line) || /^\s*\d+[.)]\s+/.test(line)) {
      const ordered = /^\s*\d+[.)]\s+/.test(line);
      const items = [];
      while (i < lines.length && (ordered ? /^\s*\d+[.)]\s+/ : /^\s*[-*+]\s+/).test(lines[i])) {
        items.push(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, ""));
        i += 1;
      }
      const tag = ordered ? "ol" : "ul";
      html.push(`<${tag}>` + items.map((t) => `<li>${inline(t)}</li>`).join("") + `</${tag}>`);
      continue;
    }
    if (/^>\s?/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^>\s?/.test(lines[i])) quoted.push(lines[i++].replace(/^>\s?/, ""));
      html.push(`<blockquote>${inline(quoted.join(" "))}</blockquote>`);
      continue;
    }
    if (/^\s*(---|\*\*\*|___)\s*$/.test(line)) {
      html.push("<hr>");
      i += 1;
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```|\s*[-*+]\s|\s*\d+[.)]\s|>|\s*\|)/.test(lines[i])) {
      para.push(lines[i++]);
    }
    if (!para.length) para.push(lines[i++]);
    html.push(`<p>${inline(para.join(" "))}</p>`);
  }
  return html.join("\n");
}
