// A small, safe markdown renderer for model output, which is untrusted: ALL HTML in the
// source is escaped first, so the only tags in the result are the ones made here.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
// The text is untrusted, so each pattern must take time in proportion to the text it reads:
// none may rescan the rest of it from each of many starting points (see `emphasis`).
const FENCE = /^\s*(```|~~~)/;
const HEADING = /^\s{0,3}(#{1,6})\s+([\s\S]*)$/; // closing #s are cut by `headingText`
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+([\s\S]*)$/;
const QUOTE = /^\s{0,3}&gt;\s?(.*)$/;
const TABLE_SEPARATOR = /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$/; // on a trimmed line
const MAX_QUOTE_DEPTH = 16; // deeper quotes are text: each level is a recursion
// Code spans and links are set aside as MARK n MARK while the rest is marked up. U+FFFF is a
// noncharacter, which Unicode keeps out of interchanged text; any in the source is dropped.
const MARK = "\uFFFF";
const HOLE = /\uFFFF(\d+)\uFFFF/g;
// [label](url): the URL may hold balanced parentheses, https://en.wikipedia.org/wiki/Path_(x).
const LINK = /\[([^[\]\n]+)\]\(\s*((?:[^()\s\uFFFF]|\([^()\s\uFFFF]*\))+)\s*\)/g;
const BARE_URL = /\bhttps?:\/\/(?:[^\s&\uFFFF]|&(?!lt;|gt;|quot;|#39;))+/gi; // to an escaped <>"'
const URL_END_PUNCTUATION = ".,;:!?*_~";

const isSpace = (c) => c !== undefined && /\s/.test(c);
const isText = (c) => c !== undefined && !/\s/.test(c); // what \S matches
const isWord = (c) => c !== undefined && /\w/.test(c);

export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** HTML for `source`: headings, paragraphs, lists, quotes, tables, code, emphasis, links. */
export function renderMarkdown(source) {
  const text = String(source ?? "").replace(/\uFFFF/g, "").replace(/\r\n?/g, "\n");
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
  return lines[i].includes("|") && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1].trim());
}

/** A heading's text without its closing run of #s and spaces. */
function headingText(text) {
  let end = text.length;
  while (end > 0 && (text[end - 1] === "#" || isSpace(text[end - 1]))) end -= 1;
  return text.slice(0, end);
}

/** Render already-escaped lines as block elements; `depth` counts the quotes around them. */
function blocks(lines, depth = 0) {
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
      out.push(`<h${level}>${inline(headingText(heading[2]))}</h${level}>`);
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
      const inner = depth < MAX_QUOTE_DEPTH ? blocks(quoted, depth + 1) : `<p>${inline(quoted.join("\n"))}</p>`;
      out.push(`<blockquote>${inner}</blockquote>`);
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

/** How much of a bare URL is the URL: not the punctuation that ends its sentence, and a
 * trailing ")" only while it closes a "(" inside, as in https://en.wikipedia.org/wiki/Path_(x). */
function urlLength(url) {
  let open = 0;
  let close = 0;
  for (const c of url) {
    if (c === "(") open += 1;
    else if (c === ")") close += 1;
  }
  let end = url.length;
  while (end > 0) {
    const c = url[end - 1];
    if (c === ")" && close > open) close -= 1;
    else if (!URL_END_PUNCTUATION.includes(c) || url.endsWith("&amp;", end)) break;
    end -= 1;
  }
  return end;
}

/** Inline markup of one escaped block: code spans and links are set aside first. */
function inline(text) {
  const held = [];
  const hold = (html) => `${MARK}${held.push(html) - 1}${MARK}`;
  let out = text.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${code}</code>`));
  out = out.replace(LINK, (_, label, url) =>
    /^https?:\/\//i.test(url) ? hold(link(url, emphasis(label))) : emphasis(label),
  );
  out = out.replace(BARE_URL, (match) => {
    const end = urlLength(match);
    const url = match.slice(0, end);
    return (/^https?:\/\/./i.test(url) ? hold(link(url, url)) : url) + match.slice(end);
  });
  out = emphasis(out);
  for (let pass = 0; pass < 3 && out.includes(MARK); pass += 1) {
    out = out.replace(HOLE, (_, n) => held[Number(n)]);
  }
  return out;
}

/** Emphasis, strong, and strike-through, each marker in turn as lazy regexes would mark them,
 * e.g. /~~(?=\S)([\s\S]*?\S)~~/g, but in one scan each: such a regex rescans the rest
 * of the text from every opener that has no closer, quadratic in "**a **a **a …". */
export function emphasis(text) {
  let out = pairs(text, "***", (t) => `<strong><em>${t}</em></strong>`);
  out = pairs(out, "**", (t) => `<strong>${t}</strong>`);
  out = pairs(out, "__", (t) => `<strong>${t}</strong>`, true);
  out = singles(out, "*", (t) => `<em>${t}</em>`);
  out = singles(out, "_", (t) => `<em>${t}</em>`, true);
  return pairs(out, "~~", (t) => `<del>${t}</del>`);
}

/** Opening `marker` before a non-space, closed by the nearest marker after a non-space; the
 * text between may hold anything, even other markers. With `wordy`, no word character may
 * touch the outside of either marker (snake__case__names stay as they are).
 * Whether a marker can close does not depend on the opener, so an opener without a closer
 * after it means no later one has any: the closers are walked once, left to right. */
function pairs(text, marker, wrap, wordy = false) {
  const size = marker.length;
  const closers = [];
  for (let p = text.indexOf(marker, 1); p !== -1; p = text.indexOf(marker, p + 1)) {
    if (isText(text[p - 1]) && !(wordy && isWord(text[p + size]))) closers.push(p);
  }
  let out = "";
  let done = 0; // text before this is in `out`
  let next = 0; // the first closer not yet ruled out
  for (let i = text.indexOf(marker); i !== -1; i = text.indexOf(marker, i + 1)) {
    if (i < done || !isText(text[i + size])) continue;
    // The regex's (^|\W) before a wordy opener cannot be a character it already replaced.
    if (wordy && i > 0 && (i === done || isWord(text[i - 1]))) continue;
    while (next < closers.length && closers[next] <= i + size) next += 1;
    if (next === closers.length) break;
    const close = closers[next];
    out += text.slice(done, i) + wrap(text.slice(i + size, close));
    done = close + size;
  }
  return out + text.slice(done);
}

/** A one-character `marker` around text without that character: starting and ending with a
 * non-space, so the closer can only be the next marker. `wordy` as for `pairs`. */
function singles(text, marker, wrap, wordy = false) {
  let out = "";
  let done = 0;
  let i = text.indexOf(marker);
  while (i !== -1) {
    const close = text.indexOf(marker, i + 1);
    if (close === -1) break;
    const opens =
      isText(text[i + 1]) && close > i + 1 && !(wordy && i > 0 && (i === done || isWord(text[i - 1])));
    if (opens && isText(text[close - 1]) && !(wordy && isWord(text[close + 1]))) {
      out += text.slice(done, i) + wrap(text.slice(i + 1, close));
      done = close + 1;
      i = text.indexOf(marker, done);
    } else {
      i = close;
    }
  }
  return out + text.slice(done);
}
