// The markdown renderer of model output (api/static/markdown.js): what it marks up, that no
// HTML of the source ever reaches the page, and that no input makes it slow.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { emphasis, escapeHtml, renderMarkdown } from "../../api/static/markdown.js";

const md = (text) => renderMarkdown(text);
const linkTo = (url, label = url) =>
  `<a href="${url}" rel="noopener noreferrer nofollow" target="_blank">${label}</a>`;

// Every tag the renderer makes, with the attributes it may carry: anything else in the output
// would have come from the source.
const ALLOWED = {
  a: ["href", "rel", "target"],
  blockquote: [], code: [], del: [], div: ["class"], em: [], h1: [], h2: [], h3: [], h4: [],
  h5: [], h6: [], hr: [], li: [], ol: ["start"], p: [], pre: [], strong: [], table: [],
  tbody: [], td: [], th: [], thead: [], tr: [], ul: [],
};

/** Each tag of `html` as { name, attrs }; the source's own < and > are all escaped, so every
 * "<" in the output opens a tag the renderer made. */
function tagsOf(html) {
  return [...html.matchAll(/<\/?([a-z0-9]+)([^>]*)>/g)].map(([, name, rest]) => ({
    name,
    attrs: Object.fromEntries([...rest.matchAll(/\s([a-z-]+)="([^"]*)"/g)].map(([, k, v]) => [k, v])),
    rest,
  }));
}

function assertOnlyOurTags(html) {
  assert.equal((html.match(/</g) || []).length, tagsOf(html).length, `a stray "<" in ${html}`);
  for (const { name, attrs, rest } of tagsOf(html)) {
    assert.ok(name in ALLOWED, `<${name}> in ${html}`);
    // Attributes are only ever name="value" pairs separated by one space.
    assert.equal(rest, Object.entries(attrs).map(([k, v]) => ` ${k}="${v}"`).join(""), html);
    for (const key of Object.keys(attrs)) assert.ok(ALLOWED[name].includes(key), `${key} on <${name}>`);
    if (attrs.href !== undefined) assert.match(attrs.href, /^https?:\/\//i);
  }
}

/** Milliseconds `fn` takes. */
function timed(fn) {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

describe("blocks", () => {
  test("headings of six levels, without their closing hashes", () => {
    assert.equal(md("# One"), "<h1>One</h1>");
    assert.equal(md("###### Six ##"), "<h6>Six</h6>");
    assert.equal(md("  ## Indented"), "<h2>Indented</h2>");
    assert.equal(md("#hashtag"), "<p>#hashtag</p>");
    assert.equal(md("####### seven"), "<p>####### seven</p>");
  });

  test("paragraphs are split by blank lines and keep their line breaks as text", () => {
    assert.equal(md("one\ntwo\n\nthree"), "<p>one\ntwo</p>\n<p>three</p>");
    assert.equal(md("a\r\nb"), "<p>a\nb</p>");
    assert.equal(md(""), "");
    assert.equal(md(null), "");
  });

  test("a rule", () => {
    assert.equal(md("above\n\n---\n\nbelow"), "<p>above</p>\n<hr>\n<p>below</p>");
    assert.equal(md("* * *"), "<hr>");
  });

  test("lists: unordered, ordered from their first number, nested by indentation", () => {
    assert.equal(md("- one\n- two"), "<ul><li>one</li><li>two</li></ul>");
    assert.equal(md("1. one\n2. two"), "<ol><li>one</li><li>two</li></ol>");
    assert.equal(md("3) three\n4) four"), '<ol start="3"><li>three</li><li>four</li></ol>');
    assert.equal(
      md("- a\n  - a1\n    1. deep\n  - a2\n- b"),
      "<ul><li>a<ul><li>a1<ol><li>deep</li></ol></li><li>a2</li></ul></li><li>b</li></ul>",
    );
    assert.equal(md("- a\n1. one"), "<ul><li>a</li></ul><ol><li>one</li></ol>");
    assert.equal(md("- a\n  more of a\n- b"), "<ul><li>a\nmore of a</li><li>b</li></ul>");
    assert.equal(md("- a\n\n- b"), "<ul><li>a</li><li>b</li></ul>");
    assert.equal(md("- **bold** item"), "<ul><li><strong>bold</strong> item</li></ul>");
  });

  test("quotes, nested ones too", () => {
    assert.equal(md("> said\n> more"), "<blockquote><p>said\nmore</p></blockquote>");
    assert.equal(md("> outer\n> > inner"), "<blockquote><p>outer</p>\n<blockquote><p>inner</p></blockquote></blockquote>");
    assert.equal(md("> # Title\n> - item"), "<blockquote><h1>Title</h1>\n<ul><li>item</li></ul></blockquote>");
  });

  test("tables: a header, a separator and rows, with inline markup in the cells", () => {
    const html = md("| Name | Price |\n|---|:---:|\n| **A** | $1 |\n| B | `2` |\n\nafter");
    assert.equal(
      html,
      '<div class="table-wrap"><table><thead><tr><th>Name</th><th>Price</th></tr></thead>' +
        "<tbody><tr><td><strong>A</strong></td><td>$1</td></tr><tr><td>B</td><td><code>2</code></td></tr>" +
        "</tbody></table></div>\n<p>after</p>",
    );
    assert.equal(md("a | b\n--- | ---\n1 | 2"), md("| a | b |\n|---|---|\n| 1 | 2 |"));
    assert.equal(md("a | b\nno separator"), "<p>a | b\nno separator</p>");
  });

  test("fenced code keeps its text as it is: escaped, and without markup", () => {
    assert.equal(md("```js\nconst a = **b** < c;\n  indented\n```"), "<pre><code>const a = **b** &lt; c;\n  indented</code></pre>");
    assert.equal(md("~~~\n# not a heading\n~~~\nafter"), "<pre><code># not a heading</code></pre>\n<p>after</p>");
    assert.equal(md("```\nnever closed"), "<pre><code>never closed</code></pre>");
  });
});

describe("inline markup", () => {
  test("strong, emphasis, both, and strike-through", () => {
    assert.equal(md("**bold** and *calm*"), "<p><strong>bold</strong> and <em>calm</em></p>");
    assert.equal(md("__bold__ and _calm_"), "<p><strong>bold</strong> and <em>calm</em></p>");
    assert.equal(md("***both***"), "<p><strong><em>both</em></strong></p>");
    assert.equal(md("~~gone~~"), "<p><del>gone</del></p>");
    assert.equal(md("**bold *inside* it**"), "<p><strong>bold <em>inside</em> it</strong></p>");
    assert.equal(md("*calm **bold** calm*"), "<p><em>calm <strong>bold</strong> calm</em></p>");
    assert.equal(md("**over\ntwo lines**"), "<p><strong>over\ntwo lines</strong></p>");
  });

  test("markers that do not open or close stay as they are", () => {
    assert.equal(md("2 * 3 * 4"), "<p>2 * 3 * 4</p>");
    assert.equal(md("snake_case_name and __init__"), "<p>snake_case_name and <strong>init</strong></p>");
    assert.equal(md("a__b__c"), "<p>a__b__c</p>");
    assert.equal(md("** not bold **"), "<p>** not bold **</p>");
    assert.equal(md("**unclosed and ~~this"), "<p>**unclosed and ~~this</p>");
  });

  test("code spans hold their text without markup", () => {
    assert.equal(md("run `**x** <y>` now"), "<p>run <code>**x** &lt;y&gt;</code> now</p>");
    assert.equal(md("`https://a.example`"), "<p><code>https://a.example</code></p>");
  });

  test("links to http(s) addresses, with a label that may hold emphasis", () => {
    assert.equal(md("[the docs](https://example.com/docs)"), `<p>${linkTo("https://example.com/docs", "the docs")}</p>`);
    assert.equal(md("[*it*](http://a.example/x?y=1&z=2)"), `<p>${linkTo("http://a.example/x?y=1&amp;z=2", "<em>it</em>")}</p>`);
    assert.equal(md("see https://a.example/b?c=d."), `<p>see ${linkTo("https://a.example/b?c=d")}.</p>`);
    assert.equal(md("https://a.example, https://b.example!"), `<p>${linkTo("https://a.example")}, ${linkTo("https://b.example")}!</p>`);
    assert.equal(md("**https://a.example/x**"), `<p><strong>${linkTo("https://a.example/x")}</strong></p>`);
    assert.equal(md("a snake_case https://a.example/x_y_z"), `<p>a snake_case ${linkTo("https://a.example/x_y_z")}</p>`);
    assert.equal(md("[a [b](https://a.example)"), `<p>[a ${linkTo("https://a.example", "b")}</p>`);
  });

  test("a bare URL ends before an escaped quote or angle bracket, and keeps a final &", () => {
    assert.equal(md('"https://a.example/x"'), `<p>&quot;${linkTo("https://a.example/x")}&quot;</p>`);
    assert.equal(md("<https://a.example/x>"), `<p>&lt;${linkTo("https://a.example/x")}&gt;</p>`);
    assert.equal(md("https://a.example/?q=1&"), `<p>${linkTo("https://a.example/?q=1&amp;")}</p>`);
  });

  // Bug: the URL was cut at its first ")", so it pointed elsewhere and a ")" trailed it.
  test("parentheses inside a URL belong to it; an unbalanced closing one does not", () => {
    const wiki = "https://en.wikipedia.org/wiki/Path_(x)";
    assert.equal(md(wiki), `<p>${linkTo(wiki)}</p>`);
    assert.equal(md(`[Path](${wiki})`), `<p>${linkTo(wiki, "Path")}</p>`);
    assert.equal(md("(see https://a.example/b)"), `<p>(see ${linkTo("https://a.example/b")})</p>`);
    assert.equal(md(`(see ${wiki}).`), `<p>(see ${linkTo(wiki)}).</p>`);
    assert.equal(md("https://a.example/f(x)(y)"), `<p>${linkTo("https://a.example/f(x)(y)")}</p>`);
    assert.equal(md("[f](https://a.example/f(x)(y))"), `<p>${linkTo("https://a.example/f(x)(y)", "f")}</p>`);
    // Not a link with a label (its parenthesis is never closed), so the URL in it is bare.
    assert.equal(md("[open](https://a.example/f(x)"), `<p>[open](${linkTo("https://a.example/f(x)")}</p>`);
  });
});

describe("untrusted HTML", () => {
  test("escapeHtml escapes the five characters that matter", () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&amp;</a>`), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;");
    assert.equal(escapeHtml(42), "42");
  });

  test("tags, attributes and entities of the source are shown as text", () => {
    assert.equal(md("<script>window.__pwned=1</script>"), "<p>&lt;script&gt;window.__pwned=1&lt;/script&gt;</p>");
    assert.equal(md('<img src=x onerror="alert(1)">'), "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>");
    assert.equal(md("&lt; stays &amp;lt;"), "<p>&amp;lt; stays &amp;amp;lt;</p>");
    assert.equal(md("# <b>heading</b>"), "<h1>&lt;b&gt;heading&lt;/b&gt;</h1>");
    assert.equal(md("| <i>x</i> |\n|---|\n| y |").includes("<i>"), false);
  });

  test("only http(s) links become links", () => {
    assert.equal(md("[a trap](javascript:window.__pwned=3)"), "<p>a trap</p>");
    assert.equal(md("[a trap](JavaScript:alert(1))"), "<p>a trap</p>");
    assert.equal(md("[data](data:text/html,x)"), "<p>data</p>");
    assert.equal(md("[mail](mailto:a@example.com)"), "<p>mail</p>");
    assert.equal(md("javascript:alert(1) and ftp://a.example"), "<p>javascript:alert(1) and ftp://a.example</p>");
    assert.equal(md("xhttps://a.example"), "<p>xhttps://a.example</p>");
  });

  test("a link cannot break out of its href", () => {
    for (const source of [
      '[x](https://a.example/"onmouseover="alert(1))',
      "[x](https://a.example/'onmouseover='alert(1))",
      'https://a.example/"onmouseover="alert(1)',
      "https://a.example/<script>",
      "[x](https://a.example/`<b>`)",
    ]) {
      const html = md(source);
      assertOnlyOurTags(html);
      for (const { attrs } of tagsOf(html)) assert.equal(attrs.onmouseover, undefined);
    }
  });

  test("the page's own placeholder character in the source changes nothing", () => {
    assert.equal(md("a\uFFFF0\uFFFF `b`"), "<p>a0 <code>b</code></p>");
  });

  test("whatever the source, the output holds only the renderer's own tags", () => {
    const pieces = [
      "<", ">", '"', "'", "&", "*", "_", "~~", "`", "[", "]", "(", ")", "](", "https://a.example/",
      "javascript:", " ", "\n", "# ", "> ", "- ", "1. ", "|", "---", "```", "x", "onerror=",
    ];
    const random = seeded(7);
    for (let n = 0; n < 3000; n += 1) {
      let source = "";
      for (let k = random(16); k > 0; k -= 1) source += pieces[random(pieces.length)];
      assertOnlyOurTags(md(source));
    }
  });
});

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

// The regexes the scan in `emphasis` replaced: right, but quadratic on unclosed markers. They
// stay here to show the scan marks up any short text exactly as they did.
function emphasisByRegex(text) {
  return text
    .replace(/\*\*\*(?=\S)([\s\S]*?\S)\*\*\*/g, "<strong><em>$1</em></strong>")
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/\*([^\s*]|[^\s*][^*]*?[^\s*])\*/g, "<em>$1</em>")
    .replace(/(^|[^\w])_([^\s_]|[^\s_][^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
}

describe("emphasis in one scan", () => {
  test("marks up short text exactly as the regexes it replaced", () => {
    const alphabet = ["*", "*", "_", "_", "~", "a", "b", " ", "\n", ".", "\u00a0", "\uFFFF"];
    const random = seeded(42);
    for (let n = 0; n < 50000; n += 1) {
      let text = "";
      for (let k = random(15); k > 0; k -= 1) text += alphabet[random(alphabet.length)];
      assert.equal(emphasis(text), emphasisByRegex(text), JSON.stringify(text));
    }
  });

  test("and on ordinary sentences", () => {
    for (const text of [
      "**Northwind** leads on search, **Fabrikam** on security and *Contoso* on price.",
      "a ***very*** ~~old~~ __new__ _plan_ for snake_case_names and 2 * 3 * 4 = 24",
      "**a *b* c** and *a **b** c* and ***x** y*",
      "__a__b__ _a_b_ (_a_) [__b__] **a**b**",
    ]) {
      assert.equal(emphasis(text), emphasisByRegex(text));
    }
  });
});

// Bug: each marker without a closer made the regexes scan the rest of the text again, so a
// page took tens of seconds on a model's output such as "**a **a **a …" (20,000 times: 1.5 s
// with the regexes, 50,000 times: about 10 s; now a few milliseconds).
describe("time in proportion to the text", () => {
  const REPEATS = 50_000;
  const LIMIT_MS = 1000; // generous: tens of milliseconds are expected, even on a busy machine
  for (const unit of ["**a ", "__a ", "~~a ", "***a ", "*a *", "_a _", "*a ", "_a ", "[a", "[a](b", "`a"]) {
    test(`${JSON.stringify(unit)} ${REPEATS.toLocaleString("en")} times`, () => {
      const source = unit.repeat(REPEATS);
      assert.ok(timed(() => md(source)) < LIMIT_MS);
    });
  }

  test("a URL with many closing parentheses, a long heading, a table separator", () => {
    for (const source of [
      `https://a.example/${")".repeat(REPEATS)}`,
      `# a${" ".repeat(REPEATS)}b`,
      `a | b\n${" ".repeat(REPEATS)}x`,
      `- ${" ".repeat(REPEATS)}\u2028`,
    ]) {
      assert.ok(timed(() => md(source)) < LIMIT_MS, JSON.stringify(source.slice(0, 20)));
    }
  });

  test("quotes nested thousands deep render without exhausting the stack", () => {
    const html = md(`${"> ".repeat(20_000)}deep`);
    assert.equal((html.match(/<blockquote>/g) || []).length, 17);
    assert.ok(html.endsWith("deep</p></blockquote>".concat("</blockquote>".repeat(16))));
  });
});
