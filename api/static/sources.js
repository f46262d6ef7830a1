// The numbered sources of a research goal run, the check of its citations, and the [n]
// markers in rendered output that open a source. Sources are untrusted: titles and snapshot
// text are only ever set as text, and only http(s) URLs become links.

import { api } from "./api.js";
import { byId, el, formatCount, parseTime, say } from "./dom.js";

const KINDS = { search: "search hit", page: "page", document: "document" };
const KIND_PLURALS = { search: "search hits", page: "pages", document: "documents" };
const MAX_LABEL = 300; // characters of a title or URL shown in a row
const MAX_FLAGGED = 50; // flagged citations listed; the rest are counted
// `[3]`, `[3⚠]`, `[1, 3⚠]`, as core/citations.py finds and marks them; not `[3](url)`. In the
// rendered HTML none of these characters is escaped, so the pattern reads it as the source.
const CITATION = /\[[ \t]*[0-9]{1,9}\u26a0?(?:[ \t]*,[ \t]*[0-9]{1,9}\u26a0?)*[ \t]*\](?!\()/g;
const CITED_ID = /([0-9]{1,9})(\u26a0?)/g;
// Markers inside these are left as they are: code is code, a link's label is the link's.
const PLAIN = new Set(["code", "pre", "a", "button"]);

const plural = (n, one, many = `${one}s`) => `${formatCount(n)} ${n === 1 ? one : many}`;
const count = (n) => (Number.isFinite(Number(n)) ? Math.max(0, Math.floor(Number(n))) : 0);
const oneLine = (text) => (typeof text === "string" ? text.replace(/\s+/g, " ").trim() : "");
const cut = (text, limit = MAX_LABEL) => (text.length <= limit ? text : `${text.slice(0, limit - 1).trimEnd()}…`);

/** "search hit", "page" or "document"; "source" for a kind this page does not know. */
export const kindLabel = (kind) => (Object.hasOwn(KINDS, kind) ? KINDS[kind] : "source");

/** The sources with a usable id (a whole number from 1), one per id (the last wins), by id. */
export function sortSources(sources) {
  const byNumber = new Map();
  for (const s of Array.isArray(sources) ? sources : []) {
    if (s && typeof s === "object" && Number.isSafeInteger(s.id) && s.id >= 1) byNumber.set(s.id, s);
  }
  return [...byNumber.values()].sort((a, b) => a.id - b.id);
}

/** "12 sources: 8 search hits, 3 pages, 1 document" (kinds in that order, unknown ones last). */
export function sourcesNote(sources) {
  if (!sources.length) return "";
  const kinds = new Map(Object.keys(KINDS).map((kind) => [kind, 0]));
  let other = 0;
  for (const s of sources) {
    if (Object.hasOwn(KINDS, s.kind)) kinds.set(s.kind, kinds.get(s.kind) + 1);
    else other += 1;
  }
  const parts = [...kinds].filter(([, n]) => n).map(([kind, n]) => plural(n, KINDS[kind], KIND_PLURALS[kind]));
  if (other) parts.push(plural(other, "other"));
  return `${plural(sources.length, "source")}: ${parts.join(", ")}`;
}

/** Where a source's URL points. `web`: an http(s) URL, with the `href` a link may carry and
 * its `host`; `corpus`: a local document (`corpus:relative/path`); `other`: anything else
 * (malformed, javascript:, data:…), only ever shown as text. `short` is what a row shows. */
export function sourceLocation(url) {
  const text = typeof url === "string" ? url.trim() : "";
  if (/^corpus:/i.test(text)) return { type: "corpus", text, short: cut(text, 120) };
  let parsed = null;
  try {
    parsed = new URL(text);
  } catch {
    parsed = null; // relative, empty, or not a URL at all
  }
  if (parsed && (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.hostname) {
    // The host the link really goes to: no user name (https://bank.example@evil.example),
    // IDNs in punycode as the URL parser gives them.
    return { type: "web", text: parsed.href, href: parsed.href, short: parsed.host.replace(/^www\./i, "") };
  }
  return { type: "other", text, short: cut(text, 120) };
}

/** What a source is called: its title, else its URL, else "Source n"; on one line. */
export function sourceLabel(source) {
  return cut(oneLine(source?.title) || oneLine(source?.url) || `Source ${source?.id ?? "?"}`);
}

/** Everything a source's row shows, to tell whether it changed. */
export const sourceKey = (s) => [s.id, s.title, s.url, s.kind, s.subtask, s.fetched_at].join("\u0000");

/** "9 citations, 9 verified" or "9 citations, 7 verified, 2 flagged", and a state for its
 * colour: `ok`, `flagged`, or `none` when nothing was cited. */
export function citationSummary(citations) {
  const total = count(citations?.total);
  const verified = count(citations?.verified);
  const listed = Array.isArray(citations?.flagged) ? citations.flagged.length : 0;
  const flagged = Math.max(listed, total - verified);
  if (!total && !flagged) return { text: "No citations", state: "none" };
  const text = `${plural(Math.max(total, verified + flagged), "citation")}, ${formatCount(verified)} verified`;
  return flagged ? { text: `${text}, ${formatCount(flagged)} flagged`, state: "flagged" } : { text, state: "ok" };
}

/** The flagged citations as `[n] in <subtask>: <reason>` (`line`), with their parts for the
 * page to build; at most `limit`, and how many `more` were left out. */
export function flaggedCitations(citations, limit = MAX_FLAGGED) {
  const all = Array.isArray(citations?.flagged) ? citations.flagged.filter((f) => f && typeof f === "object") : [];
  const items = all.slice(0, limit).map((f) => {
    const source = Number.isSafeInteger(f.source) && f.source >= 0 ? f.source : null;
    const marker = source === null ? "[?]" : `[${source}]`;
    const where = oneLine(f.subtask);
    const rest = `${where ? ` in ${where}` : ""}: ${oneLine(f.reason) || "not verified"}`;
    return { source, marker, rest, line: marker + rest };
  });
  return { items, more: all.length - items.length };
}

function citeButton(digits, flag, text) {
  const flagged = flag ? " flagged" : "";
  const title = flag ? ' title="This citation could not be verified"' : "";
  return `<button type="button" class="cite${flagged}" data-source="${Number(digits)}"${title}>${text}</button>`;
}

function linkMarker(marker) {
  const ids = [...marker.matchAll(CITED_ID)];
  if (ids.length === 1) return citeButton(ids[0][1], ids[0][2], marker);
  return marker.replace(CITED_ID, (id, digits, flag) => citeButton(digits, flag, id));
}

/** renderMarkdown's HTML with every citation marker outside code, preformatted text and
 * links made a button that opens its source: `[3]` becomes
 * `<button type="button" class="cite" data-source="3">[3]</button>` (class `cite flagged` for
 * `[3⚠]`); in a group, `[1, 3]`, each id becomes one. The buttons hold only the marker's own
 * characters (digits, brackets, commas, spaces, ⚠), so no text becomes HTML here. It relies on
 * renderMarkdown having escaped the text: every "<" in its output opens one of its own tags. */
export function linkCitations(html) {
  let inside = 0; // how many code, pre, a (or our button) elements are open
  return String(html ?? "")
    .split(/(<[^>]*>)/)
    .map((part, i) => {
      if (i % 2 === 1) {
        const tag = /^<(\/?)([a-z0-9]+)/i.exec(part);
        if (tag && PLAIN.has(tag[2].toLowerCase())) inside = Math.max(0, inside + (tag[1] ? -1 : 1));
        return part;
      }
      return inside ? part : part.replace(CITATION, linkMarker);
    })
    .join("");
}

/** The Sources card: a row per source, the citations check, and the selected source's detail
 * with its text as it was read, fetched when it is opened. */
export class SourcesCard {
  constructor(getRunId) {
    this.getRunId = getRunId;
    this.list = byId("sources");
    this.rows = new Map(); // id -> <li>
    this.keys = new Map(); // id -> sourceKey of what the row shows
    this.sources = new Map();
    this.selected = null;
    this.shownFor = null; // "<run>|<sourceKey>" whose text is shown
    this.citationsKey = null;
    this.request = 0;
    this.list.addEventListener("click", (event) => {
      const row = event.target.closest("li[data-source]");
      if (row) this.select(Number(row.dataset.source));
    });
    byId("source-close").addEventListener("click", () => this.select(null));
    byId("source-screenshot").addEventListener("error", (event) => {
      if (!event.target.hidden) {
        event.target.hidden = true;
        byId("source-screenshot-heading").hidden = true;
        say(byId("source-error"), "The screenshot could not be loaded.");
      }
    });
  }

  reset() {
    this.rows.clear();
    this.keys.clear();
    this.sources.clear();
    this.list.replaceChildren();
    this.selected = null;
    this.shownFor = null;
    this.citationsKey = null;
    this.request += 1; // an answer still on its way is for another run
    byId("sources-card").hidden = true;
    byId("sources-note").textContent = "";
    say(byId("citations"), "");
    byId("citations-flagged").replaceChildren();
    byId("citations-flagged").hidden = true;
    this.hideDetail();
  }

  /** Bring the card in step with a progress document's `sources` and `citations`. */
  update(rawSources, citations) {
    const sources = sortSources(rawSources);
    const cited = count(citations?.total) > 0 || (Array.isArray(citations?.flagged) && citations.flagged.length > 0);
    byId("sources-card").hidden = !sources.length && !cited;
    this.renderCitations(citations, cited);
    byId("sources-note").textContent = sourcesNote(sources);
    const seen = new Set();
    sources.forEach((s, index) => {
      seen.add(s.id);
      this.sources.set(s.id, s);
      const key = sourceKey(s);
      let row = this.rows.get(s.id);
      if (!row) {
        row = el("li", { "data-source": s.id });
        this.rows.set(s.id, row);
        row.classList.toggle("selected", s.id === this.selected);
      }
      if (this.keys.get(s.id) !== key) {
        row.replaceChildren(this.rowContent(s));
        this.keys.set(s.id, key);
      }
      if (this.list.children[index] !== row) this.list.insertBefore(row, this.list.children[index] || null);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
        this.keys.delete(id);
        this.sources.delete(id);
      }
    }
    if (this.selected !== null) this.showDetail();
  }

  rowContent(s) {
    const where = sourceLocation(s.url);
    return el(
      "button",
      { type: "button", class: "source-row", "aria-controls": "source-detail", title: "Show this source" },
      el("span", { class: "source-num", text: `[${s.id}]` }),
      el(
        "span",
        { class: "source-main" },
        el("span", { class: "source-title", text: sourceLabel(s) }),
        el(
          "span",
          { class: "source-meta" },
          where.type === "web"
            ? el("span", { class: "source-host", text: where.short })
            : el("code", { class: "source-host", text: where.short || "(no URL)" }),
          el("span", { class: "source-kind", "data-kind": kindLabel(s.kind), text: kindLabel(s.kind) }),
          s.subtask ? el("span", { class: "source-subtask" }, "by ", el("code", { text: s.subtask })) : null,
        ),
      ),
    );
  }

  renderCitations(citations, any) {
    const flaggedList = byId("citations-flagged");
    const key = any ? JSON.stringify(citations) : "";
    if (key === this.citationsKey) return;
    this.citationsKey = key;
    const summary = citationSummary(citations);
    const line = byId("citations");
    say(line, any ? summary.text : "");
    line.dataset.state = summary.state;
    const { items, more } = flaggedCitations(citations);
    const rows = items.map((item) =>
      el(
        "li",
        {},
        item.source === null
          ? item.marker
          : el("button", { type: "button", class: "cite flagged", "data-source": item.source, text: item.marker }),
        item.rest,
      ),
    );
    if (more > 0) rows.push(el("li", { text: `… and ${formatCount(more)} more` }));
    flaggedList.replaceChildren(...rows);
    flaggedList.hidden = !items.length;
  }

  /** Select source `n` (null: none); `reveal` scrolls it into view, as a citation's click does. */
  select(n, reveal = false) {
    this.selected = n;
    this.shownFor = null;
    for (const [id, row] of this.rows) {
      row.classList.toggle("selected", id === n);
      const button = row.firstElementChild;
      if (id === n) button?.setAttribute("aria-current", "true");
      else button?.removeAttribute("aria-current");
    }
    if (n === null) {
      this.hideDetail();
      return;
    }
    this.showDetail();
    if (reveal) {
      this.rows.get(n)?.scrollIntoView({ block: "nearest" });
      byId("source-detail").scrollIntoView({ block: "nearest" });
    }
  }

  hideDetail() {
    this.request += 1;
    byId("source-detail").hidden = true;
    this.showScreenshot(null);
  }

  showDetail() {
    const s = this.sources.get(this.selected);
    const n = this.selected;
    byId("source-detail").hidden = false;
    if (!s) {
      // A citation of an id not (or not yet) in the list: the checker flags those.
      byId("source-title").textContent = `[${n}]`;
      byId("source-url").replaceChildren();
      byId("source-meta").textContent = "This goal run has no source with this number (yet).";
      say(byId("source-error"), "");
      this.showText(null);
      this.showScreenshot(null);
      this.shownFor = null;
      this.request += 1; // the text of the source shown before must not arrive now
      return;
    }
    byId("source-title").textContent = `[${s.id}] ${sourceLabel(s)}`;
    const where = sourceLocation(s.url);
    byId("source-url").replaceChildren(
      where.type === "web"
        ? el("a", { href: where.href, rel: "noopener noreferrer nofollow", target: "_blank", text: where.text })
        : el("code", { text: where.text || "(no URL)" }),
    );
    const fetched = parseTime(s.fetched_at);
    const when = fetched === null ? null : new Date(fetched).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
    const meta = [kindLabel(s.kind), s.subtask && `found by ${s.subtask}`, when && `fetched ${when}`];
    byId("source-meta").textContent = meta.filter(Boolean).join(" · ");
    const key = `${this.getRunId()}|${sourceKey(s)}`;
    if (this.shownFor !== key) {
      this.shownFor = key;
      this.loadText(s);
    }
  }

  /** The snapshot text in the <pre>, always as text; null hides it, a `note` is muted. */
  showText(text, note = false) {
    const pre = byId("source-text");
    pre.hidden = text === null;
    pre.textContent = text ?? "";
    pre.classList.toggle("muted", note);
    byId("source-text-heading").hidden = text === null;
  }

  showScreenshot(src, alt = "") {
    const img = byId("source-screenshot");
    img.hidden = !src;
    byId("source-screenshot-heading").hidden = !src;
    img.alt = alt;
    if (src) img.src = src;
    else img.removeAttribute("src");
  }

  async loadText(s) {
    const request = ++this.request;
    const runId = this.getRunId();
    say(byId("source-error"), "");
    this.showText("Loading the text as it was read…", true);
    this.showScreenshot(null);
    const path = `/task/${encodeURIComponent(runId)}/sources/${encodeURIComponent(s.id)}`;
    try {
      const data = await api(path);
      if (request !== this.request) return;
      const text = typeof data?.text === "string" ? data.text : "";
      if (text) this.showText(text);
      else this.showText("No text was kept for this source.", true);
      if (data?.screenshot === true) this.showScreenshot(`${path}/screenshot.png`, sourceLabel(data));
    } catch (error) {
      if (request !== this.request) return;
      this.showText(null);
      say(byId("source-error"), error.status === 404 ? "This source's text is not available yet." : error.message);
    }
  }
}
