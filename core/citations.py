"""Citations checked by code: `[n]` markers, the words they quote, and whether both hold.

A subtask or the final answer cites a source as `[3]` (several: `[1][2]`, `[1, 3]`) and
supports a factual claim by quoting it just before the marker, in "…", “…” or «…» (spaces or
punctuation may sit between the closing quote and the marker). `check_citations` verifies
each cited id: it exists and was given to that subtask, and the quoted words occur in one of
that source's text snapshots once both are normalised (whitespace, case, quote marks, dashes,
ellipses). An ellipsis inside a quote stands for omitted words: each part must occur, in order.

Everything here is pure and deterministic, and made for untrusted model output: it never
raises on any string, and its cost grows linearly with the text (markers and quotes are found
in one scan; quote checks are memoised and capped per text).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from core.sources import Source

# `[3]`, `[1, 3]`; not `[3](url)`, which is a markdown link. Ids have at most 9 digits, so
# int() never meets Python's limit on long digit strings.
MARKER = re.compile(r"\[[ \t]*(?P<ids>[0-9]{1,9}(?:[ \t]*,[ \t]*[0-9]{1,9})*)[ \t]*\](?!\()")
_TOKEN = re.compile(
    rf"(?P<marker>{MARKER.pattern})|(?P<quote>[\"“”«»])|(?P<paragraph>\n[ \t\r\f\v]*\n)"
)
_IDS = re.compile(r"[0-9]+")
# Between a closing quote and its marker, and between the markers of one group.
_QUOTE_GAP = re.compile(r"[\s.,;:!?)]*")
_GROUP_GAP = re.compile(r"[ \t]*,?[ \t]*")
MAX_GAP = 4
MAX_QUOTE_CHARS = 2000  # a longer "quote" is a pairing gone wrong, not a quotation
MAX_QUOTE_CHECKS = 2000  # distinct (source, quote) pairs checked per text
FLAG_MARK = "⚠"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.M)
_BACKTICKS = re.compile(r"`+")
_FOLD = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛′`´", "'"),
        **dict.fromkeys('"“”„‟«»″'),
        **dict.fromkeys("‐‑‒–—―−﹘﹣－", "-"),
        "…": "...",
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff"),
    }
)
_AROUND_DASH = re.compile(r" ?- ?")
_EDGES = " .,;:!?'-"


class Citation(NamedTuple):
    """One cited id at one marker; `quote` is the span of the quoted words before it."""

    source: int
    start: int  # the marker's span in the text
    end: int
    quote: tuple[int, int] | None = None


class CitationFlag(BaseModel):
    """A citation that did not hold, and why, in words."""

    source: int
    subtask: str
    reason: str
    # Where the marker is in the checked text (for mark_flagged); not part of the document.
    at: int | None = Field(default=None, exclude=True)


class CitationReport(BaseModel):
    """What the checker found in one text, or in several merged: the progress document's
    `citations`. Every citation is either verified or flagged."""

    total: int = 0
    verified: int = 0
    flagged: list[CitationFlag] = Field(default_factory=list)

    @classmethod
    def merged(cls, reports: Iterable[CitationReport]) -> CitationReport:
        """One report for a goal run: each subtask's and the join's added up."""
        merged = cls()
        for report in reports:
            merged.total += report.total
            merged.verified += report.verified
            merged.flagged.extend(report.flagged)
        return merged


def normalise(text: str) -> str:
    """The form quotes and snapshots are compared in: NFKC, one kind of apostrophe, dash and
    ellipsis, no double quote marks (a quotation nested in a quote need not be marked so in
    the source), no soft hyphens or zero-width characters, case-folded, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).translate(_FOLD).casefold()
    return _AROUND_DASH.sub("-", " ".join(folded.split()))


def code_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) ranges of fenced code blocks and inline code spans, in order.

    Fences as CommonMark has them (an unclosed one runs to the end); an inline span is a run
    of backticks closed by the next run of the same length on the same line, which is what
    the page's markdown renderer shows as code.
    """
    fences: list[tuple[int, int]] = []
    opened: tuple[int, str, int] | None = None  # start, fence character, fence length
    for match in _FENCE.finditer(text):
        fence, rest = match.group(1), match.group(2)
        if opened is None:
            if fence[0] == "`" and "`" in rest:
                continue  # not a fence: an info string may not hold a backtick
            opened = (match.start(), fence[0], len(fence))
        elif fence[0] == opened[1] and len(fence) >= opened[2] and not rest.strip():
            fences.append((opened[0], match.end()))
            opened = None
    if opened is not None:
        fences.append((opened[0], len(text)))
    return _merge(fences + _inline_spans(text, fences))


def _inline_spans(text: str, fences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int, int]] = []  # start, end, line number
    line, counted, outside = 0, 0, _Outside(fences)
    for match in _BACKTICKS.finditer(text):
        if outside.contains(match.start()):
            continue
        line += text.count("\n", counted, match.start())
        counted = match.start()
        runs.append((match.start(), match.end(), line))
    # The next run of the same length on the same line, found for all runs in one pass back.
    following: list[int | None] = [None] * len(runs)
    seen: dict[tuple[int, int], int] = {}
    for i in range(len(runs) - 1, -1, -1):
        start, end, on_line = runs[i]
        following[i] = seen.get((on_line, end - start))
        seen[(on_line, end - start)] = i
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        closer = following[i]
        if closer is None:
            i += 1
        else:
            spans.append((runs[i][0], runs[closer][1]))
            i = closer + 1
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class _Outside:
    """Asks, for positions in increasing order, whether each is inside one of `spans`."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self._spans = spans
        self._next = 0

    def contains(self, position: int) -> bool:
        while self._next < len(self._spans) and self._spans[self._next][1] <= position:
            self._next += 1
        return self._next < len(self._spans) and self._spans[self._next][0] <= position


class _Quotes:
    """The quotation marks of one paragraph so far: straight ones pair up in turn, curly
    quotes and guillemets nest; `last` is the span of the quotation closed most recently."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.straight: int | None = None
        self.open: dict[str, list[int]] = {"“": [], "«": []}
        self.last: tuple[int, int] | None = None  # inside the marks: (after opener, closer)

    def see(self, mark: str, position: int) -> None:
        if mark == '"':
            if self.straight is None:
                self.straight = position
            else:
                self.last, self.straight = (self.straight + 1, position), None
        elif mark in self.open:
            self.open[mark].append(position)
        else:
            opener = self.open["“" if mark == "”" else "«"]
            if opener:
                self.last = (opener.pop() + 1, position)


def find_citations(text: str) -> list[Citation]:
    """Every cited id in `text`, in order, each with the span of the words it quotes.

    Markers and quotation marks inside code (fenced blocks, inline spans) are text, not
    citations. A group of markers (`"…" [1][2]`, `"…" [1], [2]`) shares the quote before it;
    quotation marks pair up within a paragraph only.
    """
    citations: list[Citation] = []
    code = _Outside(code_spans(text))
    quotes = _Quotes()
    group_end = -1
    group_quote: tuple[int, int] | None = None
    for token in _TOKEN.finditer(text):
        start = token.start()
        if token.lastgroup == "paragraph":
            quotes.reset()
            group_end = -1
            continue
        if code.contains(start):
            continue
        if token.lastgroup == "quote":
            quotes.see(token.group(), start)
            continue
        if (
            group_end >= 0
            and start - group_end <= MAX_GAP
            and _GROUP_GAP.fullmatch(text, group_end, start)
        ):
            quote = group_quote
        else:
            quote = _quote_before(text, quotes.last, start)
        group_end, group_quote = token.end(), quote
        ids = token.group("ids")
        for number in _IDS.findall(ids) if "," in ids else (ids,):
            citations.append(Citation(int(number), start, group_end, quote))
    return citations


def _quote_before(text: str, last: tuple[int, int] | None, marker: int) -> tuple[int, int] | None:
    if last is None:
        return None
    after_closer = last[1] + 1
    gap = marker - after_closer
    if 0 <= gap <= MAX_GAP and _QUOTE_GAP.fullmatch(text, after_closer, marker):
        return last
    return None


def check_citations(
    text: str,
    subtask: str,
    given: Mapping[int, str | Sequence[str]],
    known: Collection[int] | None = None,
) -> CitationReport:
    """Verify every citation in `text`, written by `subtask`.

    `given` maps the ids of the sources that subtask was given to their text snapshot (or
    several: a hit's snippet and the page it pointed at); `known` is every id of the goal
    run, so an id outside it "does not exist" rather than "was not given".
    """
    report = CitationReport()
    checker = _QuoteChecker(given)
    for citation in find_citations(text):
        report.total += 1
        reason = _refusal(text, citation, given, known, checker)
        if reason is None:
            report.verified += 1
        else:
            flag = CitationFlag(source=citation.source, subtask=subtask, reason=reason)
            flag.at = citation.start
            report.flagged.append(flag)
    return report


def _refusal(
    text: str,
    citation: Citation,
    given: Mapping[int, str | Sequence[str]],
    known: Collection[int] | None,
    checker: _QuoteChecker,
) -> str | None:
    number = citation.source
    if number not in given:
        if known is not None and number not in known:
            return f"source {number} does not exist"
        return f"source {number} was not given to this subtask"
    if citation.quote is None:
        return None
    start, end = citation.quote
    if end - start > MAX_QUOTE_CHARS:
        return (
            f"the quote cited from source {number} is over {MAX_QUOTE_CHARS} characters long,"
            " too long to be a quotation"
        )
    return checker.refusal(number, text[start:end])


class _QuoteChecker:
    """Whether quoted words occur in a source's snapshots, normalising each snapshot once and
    checking each (source, quote) pair once, at most MAX_QUOTE_CHECKS pairs: past the cap a
    quote costs no more than a dictionary lookup of its text."""

    def __init__(self, given: Mapping[int, str | Sequence[str]]) -> None:
        self._given = given
        self._snapshots: dict[int, list[str]] = {}
        self._answers: dict[tuple[int, str], str | None] = {}

    def refusal(self, number: int, raw: str) -> str | None:
        key = (number, raw)
        if key not in self._answers:
            if len(self._answers) >= MAX_QUOTE_CHECKS:
                return f"more than {MAX_QUOTE_CHECKS} quotes in one text; this one was not checked"
            self._answers[key] = self._check(number, MARKER.sub("", raw))
        return self._answers[key]

    def _check(self, number: int, quote: str) -> str | None:
        parts = _quote_parts(quote)
        if not parts:
            return None  # an empty quote quotes nothing: the citation stands on its id
        if any(_in_order(parts, s) for s in self._normalised(number)):
            return None
        return f"the quoted words are not in source {number}: “{_short(quote)}”"

    def _normalised(self, number: int) -> list[str]:
        if number not in self._snapshots:
            value = self._given[number]
            snapshots = [value] if isinstance(value, str) else list(value)
            self._snapshots[number] = [normalise(s) for s in snapshots if isinstance(s, str)]
        return self._snapshots[number]


def _quote_parts(quote: str) -> list[str]:
    """The normalised pieces of a quote between its ellipses ("[…]" included), edges trimmed."""
    text = normalise(quote).replace("[...]", "...")
    return [part for piece in text.split("...") if (part := piece.strip(_EDGES))]


def _in_order(parts: list[str], snapshot: str) -> bool:
    position = 0
    for part in parts:
        found = snapshot.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def _short(quote: str, limit: int = 80) -> str:
    words = " ".join(quote.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def mark_flagged(text: str, flags: Iterable[CitationFlag]) -> str:
    """`text` with every flagged citation marked where it stands: `[7]` becomes `[7⚠]`, and in
    `[1, 3]` only the failing id is marked (`[1, 3⚠]`). Only flags that carry the offset of
    their marker in this very text (check_citations sets it) are marked; do it once, after
    checking: a marked marker is no longer a citation."""
    wanted: dict[int, set[int]] = {}
    for flag in flags:
        if flag.at is not None:
            wanted.setdefault(flag.at, set()).add(flag.source)
    if not wanted:
        return text
    pieces: list[str] = []
    done = 0
    for citation in find_citations(text):
        failing = wanted.get(citation.start)
        if not failing or citation.start < done:
            continue
        ids = [int(n) for n in _IDS.findall(text, citation.start, citation.end)]
        marked = ", ".join(f"{n}{FLAG_MARK}" if n in failing else str(n) for n in ids)
        pieces += [text[done : citation.start], f"[{marked}]"]
        done = citation.end
    return "".join([*pieces, text[done:]])


def cited_ids(text: str) -> list[int]:
    """The ids `text` cites, each once, in order of first citation."""
    return list(dict.fromkeys(c.source for c in find_citations(text)))


def flags_note(report: CitationReport, limit: int = 20) -> str:
    """A short markdown note listing the citations that did not hold ("" when all did)."""
    if not report.flagged:
        return ""
    lines = [
        f"{FLAG_MARK} {len(report.flagged)} of {report.total} citations could not be verified:",
        "",
        *(f"- [{f.source}] in {f.subtask}: {f.reason}" for f in report.flagged[:limit]),
    ]
    if len(report.flagged) > limit:
        lines.append(f"- … and {len(report.flagged) - limit} more")
    return "\n".join(lines)


def sources_list(sources: Iterable[Source]) -> str:
    """The numbered Sources list a result ends with, one line per source:
    `[n] Title — url`, as a markdown list (titles are page text: brackets and backticks are
    replaced so a title can neither cite nor open code). "" when there are none."""
    lines = [
        f"- [{s.id}] {_plain(s.title) or _plain(s.url)} — {_shown_url(s.url)}"
        for s in sorted(sources, key=lambda s: s.id)
    ]
    return "\n".join(["## Sources", "", *lines]) if lines else ""


def _plain(text: str, limit: int = 200) -> str:
    words = " ".join(text.split()).translate(str.maketrans("[]`", "()'"))
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def _shown_url(url: str) -> str:
    """http(s) URLs bare (the page links them); anything else (`corpus:…`) as code."""
    url = "".join(url.split())
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. an unclosed "[" in the host
        scheme = ""
    if scheme in ("http", "https"):
        return url
    return f"`{url.replace('`', '%60')}`"
