// The sources and citations of a research goal run (api/static/sources.js): how sources are
// ordered, named and located, the sentence about the citations check, and the [n] markers in
// rendered output made into buttons without letting any untrusted text become HTML.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { renderMarkdown } from "../../api/static/markdown.js";
import {
  citationSummary, flaggedCitations, kindLabel, linkCitations, sortSources, sourceKey, sourceLabel,
  sourceLocation, sourcesNote,
} from "../../api/static/sources.js";

const source = (id, extra = {}) => ({
  id, url: `https://example.com/${id}`, title: `Title ${id}`, kind: "search", subtask: "s1",
  fetched_at: "2024-05-01T12:00:00Z", ...extra,
});
const cite = (n, text = `[${n}]`) => `<button type="button" class="cite" data-source="${n}">${text}</button>`;
const flagged = (n, text = `[${n}⚠]`) =>
  `<button type="button" class="cite flagged" data-source="${n}" title="This citation could not be verified">${text}</button>`;
const linked = (markdown) => linkCitations(renderMarkdown(markdown));

// The renderer's tags (tests/js/markdown.test.js) and the citation buttons, with their attributes.
const ALLOWED = {
  a: ["href", "rel", "target"], button: ["type", "class", "data-source", "title"],
  blockquote: [], code: [], del: [], div: ["class"], em: [], h1: [], h2: [], h3: [], h4: [],
  h5: [], h6: [], hr: [], li: [], ol: ["start"], p: [], pre: [], strong: [], table: [],
  tbody: [], td: [], th: [], thead: [], tr: [], ul: [],
};

function tagsOf(html) {
  return [...html.matchAll(/<(\/?)([a-z0-9]+)([^>]*)>/g)].map(([, slash, name, rest]) => ({
    name,
    closing: slash === "/",
    attrs: Object.fromEntries([...rest.matchAll(/\s([a-z-]+)="([^"]*)"/g)].map(([, k, v]) => [k, v])),
    rest,
  }));
}

function assertOnlyOurTags(html) {
  assert.equal((html.match(/</g) || []).length, tagsOf(html).length, `a stray "<" in ${html}`);
  for (const { name, closing, attrs, rest } of tagsOf(html)) {
    assert.ok(name in ALLOWED, `<${name}> in ${html}`);
    assert.equal(rest, Object.entries(attrs).map(([k, v]) => ` ${k}="${v}"`).join(""), html);
    for (const key of Object.keys(attrs)) assert.ok(ALLOWED[name].includes(key), `${key} on <${name}>`);
    if (attrs.href !== undefined) assert.match(attrs.href, /^https?:\/\//i);
    if (closing) assert.equal(rest, "", html);
    else if (name === "button") {
      assert.equal(attrs.type, "button");
      assert.match(attrs.class, /^cite( flagged)?$/);
      assert.match(attrs["data-source"], /^[0-9]+$/);
    }
  }
}

/** A small deterministic random number generator (mulberry32): `random(n)` is in [0, n). */
function seeded(seed) {
  let state = seed;
  return (n) => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}

describe("the list of sources", () => {
  test("by id, one row per id (the latest wins), without entries that have no usable id", () => {
    const list = [source(3), source(1), source(2), source(1, { title: "newer" })];
    assert.deepEqual(sortSources(list).map((s) => [s.id, s.title]), [[1, "newer"], [2, "Title 2"], [3, "Title 3"]]);
    const junk = [null, "x", 4, {}, { id: "2" }, { id: 0 }, { id: -1 }, { id: 1.5 }, { id: NaN }, source(5)];
    assert.deepEqual(sortSources(junk).map((s) => s.id), [5]);
    for (const none of [undefined, null, {}, "[1]"]) assert.deepEqual(sortSources(none), []);
    assert.deepEqual(sortSources([source(10), source(9), source(100)]).map((s) => s.id), [9, 10, 100]); // numbers, not text
  });

  test("a note counts them by kind, in a fixed order", () => {
    assert.equal(sourcesNote([]), "");
    assert.equal(sourcesNote([source(1)]), "1 source: 1 search hit");
    const mixed = [
      source(1), source(2, { kind: "document" }), source(3, { kind: "page" }), source(4), source(5, { kind: "page" }),
      source(6, { kind: "__proto__" }),
    ];
    assert.equal(sourcesNote(mixed), "6 sources: 2 search hits, 2 pages, 1 document, 1 other");
  });

  test("kinds in words; an unknown kind is a 'source'", () => {
    assert.deepEqual(["search", "page", "document"].map(kindLabel), ["search hit", "page", "document"]);
    for (const odd of ["toString", "__proto__", "constructor", undefined, null, 3]) assert.equal(kindLabel(odd), "source");
  });

  test("a row changes when anything it shows does", () => {
    const s = source(1);
    assert.equal(sourceKey(s), sourceKey({ ...s }));
    for (const field of ["title", "url", "kind", "subtask", "fetched_at"]) {
      assert.notEqual(sourceKey(s), sourceKey({ ...s, [field]: "changed" }), field);
    }
  });
});

describe("names and places", () => {
  test("a source is called by its title, else its URL, else its number, on one line", () => {
    assert.equal(sourceLabel(source(1, { title: "  Northwind\n pricing  " })), "Northwind pricing");
    assert.equal(sourceLabel(source(2, { title: "" })), "https://example.com/2");
    assert.equal(sourceLabel({ id: 3, title: "   ", url: "" }), "Source 3");
    assert.equal(sourceLabel({ id: 4, title: null, url: 42 }), "Source 4");
    assert.equal(sourceLabel(null), "Source ?");
    const long = sourceLabel(source(5, { title: "x".repeat(10_000) }));
    assert.equal(long.length, 300);
    assert.ok(long.endsWith("…"));
  });

  test("a hostile title is kept as the text it is: the page only ever sets it as text", () => {
    const title = '<script>alert(1)</script><img src=x onerror="alert(2)">';
    assert.equal(sourceLabel(source(1, { title })), title);
  });

  test("http(s) URLs: a link and the host it really goes to", () => {
    assert.deepEqual(sourceLocation("https://www.Example.com/a?b=1#c"), {
      type: "web", text: "https://www.example.com/a?b=1#c", href: "https://www.example.com/a?b=1#c", short: "example.com",
    });
    assert.equal(sourceLocation("  http://a.example:8080/x ").short, "a.example:8080");
    // The user name is not the host: the link goes to evil.example, and the row says so.
    const tricky = sourceLocation("https://bank.example@evil.example/login");
    assert.equal(tricky.short, "evil.example");
    assert.equal(sourceLocation("https://bücher.example/").short, "xn--bcher-kva.example");
    // The href is the parser's: a quote cannot end the attribute, a space is encoded.
    const quoted = sourceLocation('https://a.example/"onmouseover="alert(1) x');
    assert.equal(quoted.href, "https://a.example/%22onmouseover=%22alert(1)%20x");
  });

  test("corpus: paths are local documents, shown as text", () => {
    assert.deepEqual(sourceLocation("corpus:reports/2024/q1.md"), {
      type: "corpus", text: "corpus:reports/2024/q1.md", short: "corpus:reports/2024/q1.md",
    });
    assert.equal(sourceLocation("CORPUS:../../etc/passwd").type, "corpus");
    assert.equal(sourceLocation("corpus:x").href, undefined);
  });

  test("javascript:, data:, malformed and relative URLs never become links", () => {
    for (const url of [
      "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
      "java\nscript:alert(1)", "\u0000javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox(1)", "file:///etc/passwd", "mailto:a@example.com", "ftp://a.example/x",
      "//evil.example/x", "/relative/path", "https://", "http://[::1", "https://exa mple.com/", "not a url",
      "", null, undefined, 42, { href: "https://a.example" },
    ]) {
      const where = sourceLocation(url);
      assert.equal(where.type, "other", String(url));
      assert.equal(where.href, undefined, String(url));
    }
    assert.equal(sourceLocation("javascript:alert(1)").short, "javascript:alert(1)");
    assert.equal(sourceLocation(`https://${"a".repeat(500)}`).type, "web");
    assert.equal(sourceLocation(`x:${"a".repeat(500)}`).short.length, 120);
  });
});

describe("the citations check in words", () => {
  test("all verified", () => {
    assert.deepEqual(citationSummary({ total: 9, verified: 9, flagged: [] }), { text: "9 citations, 9 verified", state: "ok" });
    assert.deepEqual(citationSummary({ total: 1, verified: 1 }), { text: "1 citation, 1 verified", state: "ok" });
    assert.deepEqual(citationSummary({ total: 1234, verified: 1234 }), { text: "1,234 citations, 1,234 verified", state: "ok" });
  });

  test("some flagged", () => {
    const two = [{ source: 3, subtask: "s2", reason: "a" }, { source: 9, subtask: "join", reason: "b" }];
    assert.deepEqual(citationSummary({ total: 9, verified: 7, flagged: two }), {
      text: "9 citations, 7 verified, 2 flagged", state: "flagged",
    });
    // Counts that disagree with the list: the larger number of flagged ones is told.
    assert.equal(citationSummary({ total: 9, verified: 5, flagged: two }).text, "9 citations, 5 verified, 4 flagged");
    assert.equal(citationSummary({ total: 1, verified: 1, flagged: two }).text, "3 citations, 1 verified, 2 flagged");
  });

  test("none, or nothing usable", () => {
    for (const none of [undefined, null, {}, { total: 0, verified: 0, flagged: [] }, { total: "x", verified: -3 }]) {
      assert.deepEqual(citationSummary(none), { text: "No citations", state: "none" });
    }
  });

  test("each flagged citation as `[n] in <subtask>: <reason>`", () => {
    const { items, more } = flaggedCitations({
      flagged: [
        { source: 3, subtask: "compare", reason: "the quoted words are not in source 3" },
        { source: 12, subtask: "", reason: "" },
        { source: "<b>", subtask: "s\n1", reason: "  no\tsuch   source " },
        null,
      ],
    });
    assert.deepEqual(items.map((i) => i.line), [
      "[3] in compare: the quoted words are not in source 3",
      "[12]: not verified",
      "[?] in s 1: no such source",
    ]);
    assert.deepEqual(items.map((i) => [i.source, i.marker]), [[3, "[3]"], [12, "[12]"], [null, "[?]"]]);
    assert.equal(more, 0);
  });

  test("a hostile reason stays text, and a long list is cut with a count of the rest", () => {
    const [item] = flaggedCitations({ flagged: [{ source: 1, subtask: "x", reason: "<script>alert(1)</script>" }] }).items;
    assert.equal(item.rest, " in x: <script>alert(1)</script>"); // set with textContent by the page
    const many = Array.from({ length: 75 }, (_, i) => ({ source: i + 1, subtask: "s", reason: "r" }));
    const { items, more } = flaggedCitations({ flagged: many });
    assert.deepEqual([items.length, more], [50, 25]);
    assert.deepEqual(flaggedCitations({ flagged: many }, 2).items.map((i) => i.line), ["[1] in s: r", "[2] in s: r"]);
    for (const none of [undefined, null, {}, { flagged: "x" }]) assert.deepEqual(flaggedCitations(none), { items: [], more: 0 });
  });
});

describe("citation markers in rendered output", () => {
  test("[n] becomes a button that opens source n; [n⚠] a flagged one", () => {
    assert.equal(linked("Prices rose [3]."), `<p>Prices rose ${cite(3)}.</p>`);
    assert.equal(linked("Shaky [3⚠] claim"), `<p>Shaky ${flagged(3)} claim</p>`);
    assert.equal(linked("both [1][2]"), `<p>both ${cite(1)}${cite(2)}</p>`);
    assert.equal(linked("**bold [4]**"), `<p><strong>bold ${cite(4)}</strong></p>`);
    assert.equal(linked("# Heading [5]"), `<h1>Heading ${cite(5)}</h1>`);
    assert.equal(linked("[007]"), `<p>${cite(7, "[007]")}</p>`);
  });

  test("in a group each id is a button of its own, between the group's brackets", () => {
    assert.equal(linked("see [1, 3⚠]"), `<p>see [${cite(1, "1")}, ${flagged(3, "3⚠")}]</p>`);
    assert.equal(linked("see [ 2 ,4 ]"), `<p>see [ ${cite(2, "2")} ,${cite(4, "4")} ]</p>`);
  });

  test("the Sources section the result ends with links each entry", () => {
    const html = linked("## Sources\n\n- [1] Northwind — https://a.example/x\n- [2] Notes — `corpus:notes.md`");
    assert.equal(
      html,
      `<h2>Sources</h2>\n<ul><li>${cite(1)} Northwind — <a href="https://a.example/x" rel="noopener noreferrer nofollow" ` +
        `target="_blank">https://a.example/x</a></li><li>${cite(2)} Notes — <code>corpus:notes.md</code></li></ul>`,
    );
  });

  test("not inside code, preformatted text or links; not a markdown link's label", () => {
    assert.equal(linked("`arr[1]` and [2]"), `<p><code>arr[1]</code> and ${cite(2)}</p>`);
    assert.equal(linked("```\nx = a[1]\n```"), "<pre><code>x = a[1]</code></pre>");
    assert.equal(linked("https://a.example/[1]"), renderMarkdown("https://a.example/[1]"));
    assert.equal(linked("[1](https://a.example)"), renderMarkdown("[1](https://a.example)"));
    assert.equal(linked("[1](not a link"), "<p>[1](not a link</p>"); // "[n](" is never a citation
  });

  test("what is not a citation stays as it is", () => {
    for (const text of ["[]", "[a]", "[1a]", "[-1]", "[1.5]", "[1,]", "[,1]", "[⚠1]", "[1⚠⚠]", "[1234567890]", "[[x]]", "1]", "[1"]) {
      assert.equal(linked(text), renderMarkdown(text), text);
    }
  });

  test("hostile markdown: a javascript: link with a number for its label is neither link nor button", () => {
    assert.equal(linked("[1](javascript:alert(1))"), "<p>1</p>");
    assert.equal(linked("[1](JaVaScRiPt:alert(document.cookie))"), "<p>1</p>");
    const html = linked('<script>alert("[1]")</script> [2] <img src=x onerror=alert(1)>[3⚠]');
    assert.equal(
      html,
      `<p>&lt;script&gt;alert(&quot;${cite(1)}&quot;)&lt;/script&gt; ${cite(2)} &lt;img src=x onerror=alert(1)&gt;${flagged(3)}</p>`,
    );
    assertOnlyOurTags(html);
  });

  test("doing it twice changes nothing more", () => {
    const once = linked("a [1] b [2⚠] `c[3]` [4, 5]");
    assert.equal(linkCitations(once), once);
  });

  test("no input makes it hand out tags or attributes of its own making", () => {
    const pieces = [
      "[", "]", "1", "23", "⚠", ",", " ", "(", ")", "](", "<", ">", '"', "'", "&", "`", "```", "\n", "*", "_",
      "https://a.example/", "javascript:", "<script>", "onerror=", "- ", "# ", "> ", "|", "---",
    ];
    const random = seeded(11);
    for (let n = 0; n < 3000; n += 1) {
      let text = "";
      for (let k = random(20); k > 0; k -= 1) text += pieces[random(pieces.length)];
      const html = linked(text);
      assertOnlyOurTags(html);
      // Only the markers' own characters move into buttons: removing the buttons' tags gives
      // back exactly the renderer's HTML.
      assert.equal(html.replace(/<button [^>]*>|<\/button>/g, ""), renderMarkdown(text), JSON.stringify(text));
    }
  });

  test("takes time in proportion to the text", () => {
    for (const text of ["[1, ".repeat(50_000), "[1".repeat(50_000), "[1]".repeat(50_000), `${"[ ".repeat(50_000)}1`]) {
      const start = performance.now();
      linked(text);
      assert.ok(performance.now() - start < 2000, JSON.stringify(text.slice(0, 8)));
    }
  });

  test("empty input", () => {
    assert.equal(linkCitations(""), "");
    assert.equal(linkCitations(null), "");
    assert.equal(linkCitations(undefined), "");
  });
});
