// A small, safe markdown renderer for model output, which is untrusted: ALL HTML in the
// source is escaped first, so the only tags in the result are the ones made here.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const FENCE = /^\s*(```|~~~)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)[\s#]*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const QUOTE = /^\s{0,3}&gt;\s?(.*)$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
const HOLE = /\u0000(\d+)\u0000/g;

export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** HTML for `source`: headings, paragraphs, lists, quotes, tables, code, emphasis, links. */
export function renderMarkdown(source) {
  const text = String(source ?? "").replace(/\u0000/g, "").replace(/\r\n?/g, "\n");
  return blocks(escapeHtml(text).split("\n"));
}

function startsBlock(lines, i) {
  const line = lines[i];
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    LIST_ITEM.test(line) ||
    QUOTE.test(line) ||
    isTableStart(lines, i)
  );
}

function isTableStart(lines, i) {
  return lines[i].includes("|") && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1]);
}

/** Render already-escaped lines as block elements. */
function blocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = line.match(FENCE);
    if (fence) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
      i += 1; // the closing fence
      out.push(`<pre><code>${code.join("\n")}</code></pre>`);
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      const level = heading[1].length;
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.push("<hr>");
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].match(QUOTE)[1]);
      out.push(`<blockquote>${blocks(quoted)}</blockquote>`);
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const end = listEnd(lines, i);
      out.push(list(lines.slice(i, end)));
      i = end;
      continue;
    }
    if (isTableStart(lines, i)) {
      let end = i + 2;
      while (end < lines.length && lines[end].includes("|") && lines[end].trim()) end += 1;
      out.push(table(lines[i], lines.slice(i + 2, end)));
      i = end;
      continue;
    }
    const paragraph = [line];
    i += 1;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) paragraph.push(lines[i++]);
    out.push(`<p>${inline(paragraph.join("\n"))}</p>`);
  }
  return out.join("\n");
}

function listEnd(lines, start) {
  let i = start + 1;
  while (i < lines.length) {
    const line = lines[i];
    if (LIST_ITEM.test(line) || (line.trim() && /^\s+/.test(line))) i += 1;
    else if (!line.trim() && i + 1 < lines.length && LIST_ITEM.test(lines[i + 1])) i += 1;
    else break;
  }
  return i;
}

/** Nested lists from item lines; deeper indentation opens a list inside the last item. */
function list(lines) {
  const items = [];
  for (const line of lines) {
    const match = line.match(LIST_ITEM);
    if (match) {
      const ordered = /\d/.test(match[2]);
      items.push({ indent: match[1].length, ordered, start: parseInt(match[2], 10), text: match[3] });
    } else if (line.trim() && items.length) {
      items[items.length - 1].text += `\n${line.trim()}`;
    }
  }
  let html = "";
  const open = [];
  for (const item of items) {
    while (open.length && item.indent < open[open.length - 1].indent) {
      html += `</li></${open.pop().tag}>`;
    }
    const tag = item.ordered ? "ol" : "ul";
    let top = open[open.length - 1];
    if (top && item.indent === top.indent && top.tag !== tag) {
      html += `</li></${open.pop().tag}>`; // a list of the other kind starts here
      top = open[open.length - 1];
    }
    if (!top || item.indent > top.indent) {
      const start = item.ordered && item.start !== 1 ? ` start="${item.start}"` : "";
      html += `<${tag}${start}>`;
      open.push({ indent: item.indent, tag });
    } else {
      html += "</li>";
    }
    html += `<li>${inline(item.text)}`;
  }
  while (open.length) html += `</li></${open.pop().tag}>`;
  return html;
}

function cells(row) {
  return row.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => inline(c.trim()));
}

function table(header, rows) {
  const head = cells(header).map((c) => `<th>${c}</th>`).join("");
  const body = rows.map((r) => `<tr>${cells(r).map((c) => `<td>${c}</td>`).join("")}</tr>`);
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${body.join("")}</tbody></table></div>`;
}

function link(url, label) {
  return `<a href="${url}" rel="noopener noreferrer nofollow" target="_blank">${label}</a>`;
}

/** Inline markup of one escaped block: code spans and links are set aside first. */
function inline(text) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let out = text.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${code}</code>`));
  out = out.replace(/\[([^\]\n]+)\]\(\s*([^)\s]+)\s*\)/g, (_, label, url) =>
    /^https?:\/\//i.test(url) ? hold(link(url, emphasis(label))) : emphasis(label),
  );
  out = out.replace(
    /\bhttps?:\/\/[^\s\u0000]+?(?=[.,;:!?)]*(?:\s|$|&lt;|&gt;|&quot;|&#39;|\u0000))/gi,
    (url) => hold(link(url, url)),
  );
  out = emphasis(out);
  for (let pass = 0; pass < 3 && out.includes("\u0000"); pass += 1) {
    out = out.replace(HOLE, (_, n) => held[Number(n)]);
  }
  return out;
}

function emphasis(text) {
  return text
    .replace(/\*\*\*(?=\S)([\s\S]*?\S)\*\*\*/g, "<strong><em>$1</em></strong>")
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/\*([^\s*]|[^\s*][^*]*?[^\s*])\*/g, "<em>$1</em>")
    .replace(/(^|[^\w])_([^\s_]|[^\s_][^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
}
