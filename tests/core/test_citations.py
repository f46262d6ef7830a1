"""The citation checker: markers and quotes found, fabrications and misquotes flagged, no crash."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.citations import (
    FLAG_MARK,
    MAX_QUOTE_CHECKS,
    CitationFlag,
    CitationReport,
    check_citations,
    cited_ids,
    code_spans,
    find_citations,
    flags_note,
    mark_flagged,
    normalise,
    sources_list,
)
from core.sources import Source, SourceBook

VELOCARGO = (
    "Velocargo was founded in 2014 in Utrecht. Its chief executive, Marit Janssen, took over "
    "in 2021. The Haul 2 costs €4,890 — VAT included."
)
PRESS = "Press release, 3 May 2016: Velocargo names Pieter de Wit chief executive."
GIVEN = {1: VELOCARGO, 2: PRESS}


def quotes(text: str) -> list[tuple[int, str | None]]:
    return [
        (c.source, text[c.quote[0] : c.quote[1]] if c.quote else None) for c in find_citations(text)
    ]


def check(
    text: str, given: dict[int, str] | None = None, known: set[int] | None = None
) -> CitationReport:
    return check_citations(text, "research_1", GIVEN if given is None else given, known)


# --- finding markers and their quotes ------------------------------------------------------


def test_markers_single_adjacent_and_listed() -> None:
    text = "One [1]. Two [1][2]. Listed [1, 2] and [ 3 ,4 ]. Spaced [1] [2]."
    assert [c.source for c in find_citations(text)] == [1, 1, 2, 1, 2, 3, 4, 1, 2]


@pytest.mark.parametrize(
    "text",
    [
        "a link [1](https://a.example/)",
        "a footnote [^1]",
        "words [one] and [1a] and [-1] and [1.5] and [1,] and []",
        "an id too long to be one [1234567890]",
        "a marker across lines [1,\n2]",
    ],
)
def test_things_that_are_not_citations(text: str) -> None:
    assert find_citations(text) == []


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ('It was "founded in 2014" [1].', "founded in 2014"),
        ("It was “founded in 2014” [1].", "founded in 2014"),
        ("It was «founded in 2014» [1].", "founded in 2014"),
        ('It was "founded in 2014"[1].', "founded in 2014"),
        ('It was "founded in 2014", [1].', "founded in 2014"),
        ('It was "founded in 2014." [1]', "founded in 2014."),
        ('(as "founded in 2014") [1]', "founded in 2014"),
    ],
)
def test_the_quote_just_before_a_marker(text: str, quoted: str) -> None:
    assert quotes(text) == [(1, quoted)]


def test_no_quote_when_words_stand_between_it_and_the_marker() -> None:
    assert quotes('It was "founded in 2014" in Utrecht [1].') == [(1, None)]
    assert quotes("No quote at all [1].") == [(1, None)]


def test_a_group_of_markers_shares_its_quote() -> None:
    text = 'He is "the chief executive" [1][2], "since 2021" [1], [2] and later [3]'
    assert quotes(text) == [
        (1, "the chief executive"),
        (2, "the chief executive"),
        (1, "since 2021"),
        (2, "since 2021"),
        (3, None),
    ]


def test_nested_quotes_each_end_at_their_own_marker() -> None:
    text = 'The release said "Velocargo names “Pieter de Wit” [2] chief executive" [2].'
    assert quotes(text) == [
        (2, "Pieter de Wit"),
        (2, "Velocargo names “Pieter de Wit” [2] chief executive"),
    ]
    assert check(text).verified == 2  # the inner marker is dropped from the outer quote


def test_straight_quotes_pair_in_turn_and_not_across_paragraphs() -> None:
    text = 'A "first" quote, then "second" [1].\n\nNew paragraph" [1]'
    assert quotes(text) == [(1, "second"), (1, None)]


def test_markers_and_quotes_in_code_are_text() -> None:
    text = (
        'Inline `"founded" [1]` code, ``double `[2]` ticks``, and a fence:\n'
        '```python\nx = "a" [3]\n```\n'
        '~~~\n[4]\n~~~\nafter "founded in 2014" [1]'
    )
    assert quotes(text) == [(1, "founded in 2014")]
    assert mark_flagged(text, check(text, given={}).flagged).count(FLAG_MARK) == 1


def test_an_unclosed_fence_runs_to_the_end_and_a_lone_backtick_is_text() -> None:
    assert find_citations("a ` b [1]\n```\n[2]") == [find_citations("a ` b [1]")[0]]
    assert code_spans("`a` b `c`") == [(0, 3), (6, 9)]
    assert code_spans("``` has ` in info\n[1]") == []  # not a fence


# --- checking --------------------------------------------------------------------------------


def test_a_fabricated_id_is_flagged() -> None:
    report = check('Velocargo "was founded in 2014" [7].', known={1, 2})
    assert report.total == 1 and report.verified == 0
    assert report.flagged == [
        CitationFlag(source=7, subtask="research_1", reason="source 7 does not exist", at=32)
    ]


def test_an_id_of_the_run_not_given_to_this_subtask_is_flagged_as_such() -> None:
    report = check("See [3].", known={1, 2, 3})
    assert [f.reason for f in report.flagged] == ["source 3 was not given to this subtask"]
    # Without the run's ids the checker cannot tell the two apart, and says what it knows.
    assert [f.reason for f in check("See [3].").flagged] == [
        "source 3 was not given to this subtask"
    ]


def test_a_misquote_is_flagged_with_the_quote() -> None:
    report = check('Velocargo was "founded in 2012 in Utrecht" [1].')
    assert report.verified == 0
    assert [f.reason for f in report.flagged] == [
        "the quoted words are not in source 1: “founded in 2012 in Utrecht”"
    ]


def test_a_true_quote_from_another_source_is_still_a_misquote() -> None:
    report = check('The CEO is "Pieter de Wit" [1].')
    assert report.flagged[0].reason.startswith("the quoted words are not in source 1")


def test_a_quote_across_a_line_break_in_other_case_and_marks_is_verified() -> None:
    text = (
        "Velocargo: “FOUNDED IN 2014\n   in utrecht” [1]; its ‘chief executive’, "
        '"Marit  Janssen" [1]; and "€4,890 - VAT included" [1].'
    )
    report = check(text)
    assert (report.total, report.verified, report.flagged) == (3, 3, [])


def test_ellipses_stand_for_omitted_words_in_order() -> None:
    assert check('"founded in 2014 … Marit Janssen" [1]').verified == 1
    assert check('"founded in 2014 [...] took over in 2021" [1]').verified == 1
    assert check('"Marit Janssen ... founded in 2014" [1]').verified == 0  # out of order


def test_a_citation_without_a_quote_stands_on_its_id() -> None:
    report = check("Velocargo is Dutch [1], per the release [2].")
    assert (report.total, report.verified) == (2, 2)
    assert check('An empty quote "" [1].').verified == 1


def test_a_source_with_several_snapshots_verifies_against_any() -> None:
    report = check_citations(
        '"the snippet" [1] and "the page" [1] but not "snippet the page" [1]',
        "s",
        {1: ("the snippet", "the page")},
    )
    assert (report.verified, len(report.flagged)) == (2, 1)


def test_an_overlong_quote_is_flagged_not_searched() -> None:
    report = check('"' + "founded " * 300 + '" [1]')
    assert "too long to be a quotation" in report.flagged[0].reason


def test_quote_checks_are_capped_per_text() -> None:
    text = " ".join(f'"word{n}" [1]' for n in range(MAX_QUOTE_CHECKS + 5))
    report = check(text, given={1: "word1"})
    assert report.total == MAX_QUOTE_CHECKS + 5
    assert report.verified == 1
    assert sum("not checked" in f.reason for f in report.flagged) == 5


def test_normalise() -> None:
    assert normalise("  “Ｆounded”\n\tIN\u00a02014 — here…  ") == "founded in 2014-here..."
    assert normalise("co\u00adoperative\u200b straße") == "cooperative strasse"


# --- marking, lists, reports -----------------------------------------------------------------


def test_mark_flagged_marks_only_the_failing_ids_where_they_stand() -> None:
    text = 'Velocargo "was founded in 2014" [1, 7] and "in 2012" [1]; also [1].'
    report = check(text, known={1, 2})
    assert mark_flagged(text, report.flagged) == (
        'Velocargo "was founded in 2014" [1, 7⚠] and "in 2012" [1⚠]; also [1].'
    )
    assert mark_flagged(text, []) == text
    # Flags without an offset (read back from the document) or pointing elsewhere change nothing.
    assert mark_flagged(text, [CitationFlag(source=1, subtask="s", reason="r")]) == text
    stray = CitationFlag(source=1, subtask="s", reason="r", at=3)
    assert mark_flagged(text, [stray]) == text


def test_a_marked_text_no_longer_cites_the_flagged_ids() -> None:
    text = "fabricated [9] and fine [1]"
    marked = mark_flagged(text, check(text, known={1}).flagged)
    assert marked == "fabricated [9⚠] and fine [1]"
    assert cited_ids(marked) == [1]


def test_the_flag_offset_is_not_part_of_the_document() -> None:
    report = check("See [9].", known={1})
    assert report.model_dump() == {
        "total": 1,
        "verified": 0,
        "flagged": [{"source": 9, "subtask": "research_1", "reason": "source 9 does not exist"}],
    }


def test_reports_merge_across_subtasks() -> None:
    one = check_citations('"founded in 2014" [1] and [5]', "research_1", GIVEN, {1, 2})
    join = check_citations("[2] and [1]", "join", GIVEN, {1, 2})
    merged = CitationReport.merged([one, join])
    assert (merged.total, merged.verified) == (4, 3)
    assert [(f.source, f.subtask) for f in merged.flagged] == [(5, "research_1")]
    assert CitationReport.merged([]) == CitationReport()


def test_cited_ids_in_order_of_first_citation() -> None:
    assert cited_ids("[3] then [1, 3] then [2][1]") == [3, 1, 2]


def test_flags_note() -> None:
    assert flags_note(CitationReport(total=3, verified=3)) == ""
    report = check('"no such words" [1] and [9]', known={1, 2})
    assert flags_note(report) == (
        "⚠ 2 of 2 citations could not be verified:\n\n"
        "- [1] in research_1: the quoted words are not in source 1: “no such words”\n"
        "- [9] in research_1: source 9 does not exist"
    )
    many = CitationReport(
        total=30, flagged=[CitationFlag(source=n, subtask="s", reason="r") for n in range(30)]
    )
    assert flags_note(many, limit=2).endswith("- … and 28 more")


def test_sources_list() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    sources = [
        Source(
            id=2,
            url="corpus:specs/hanzo%20mule.pdf",
            title="",
            kind="document",
            subtask="s",
            fetched_at=at,
        ),
        Source(
            id=1,
            url="https://velocargo.example/about",
            title="About [1] `Velocargo`\n  cargo bikes",
            kind="page",
            subtask="s",
            fetched_at=at,
        ),
    ]
    assert sources_list(sources) == (
        "## Sources\n\n"
        "- [1] About (1) 'Velocargo' cargo bikes — https://velocargo.example/about\n"
        "- [2] corpus:specs/hanzo%20mule.pdf — `corpus:specs/hanzo%20mule.pdf`"
    )
    assert sources_list([]) == ""
    # A title cannot add a citation to the list.
    assert cited_ids(sources_list(sources)) == [1, 2]


def test_the_book_feeds_the_checker() -> None:
    book = SourceBook()
    book.add("https://velocargo.example/", "Velocargo", "page", "open", VELOCARGO)
    book.add("https://press.example/2016", "Press", "page", "open_press", PRESS)
    book.give("write", [1])
    report = check_citations(
        'Founded "in 2014 in Utrecht" [1]; "names Pieter de Wit" [2]; [3]',
        "write",
        book.given_to("write"),
        book.ids(),
    )
    assert [f.reason for f in report.flagged] == [
        "source 2 was not given to this subtask",
        "source 3 does not exist",
    ]


# --- adversarial output ----------------------------------------------------------------------

MARKUP = st.sampled_from(
    [
        '"',
        "“",
        "”",
        "«",
        "»",
        "[",
        "]",
        "[1]",
        "[2, 3]",
        "[1](",
        "`",
        "```",
        "~~~",
        "\n",
        "\n\n",
        " ",
        ",",
        ".",
        "…",
        "[...]",
        "\ud800",
        "ß",
        "ﬁ",
        "9" * 12,
    ]
)
TEXTS = st.lists(st.one_of(MARKUP, st.text(max_size=8)), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, snapshot=TEXTS, known=st.sets(st.integers(0, 4)))
def test_the_checker_never_raises_and_counts_every_citation_once(
    text: str, snapshot: str, known: set[int]
) -> None:
    report = check_citations(text, "s", {1: snapshot, 2: (snapshot, "x")}, known)
    assert report.total == report.verified + len(report.flagged)
    assert report.total == len(find_citations(text))
    marked = mark_flagged(text, report.flagged)
    assert marked.count(FLAG_MARK) - text.count(FLAG_MARK) == len(report.flagged)
    sources_list([])
    flags_note(report)


@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_quoting_words_from_a_source_verifies(text: str) -> None:
    """Any run of a snapshot's words, quoted and cited, is verified."""
    assume(not any(mark in text for mark in '"“”«»[`'))  # what would end the quote or cite
    quoted = " ".join(text.split()[:5])
    report = check_citations(f'"{quoted}" [1]', "s", {1: f"before {text} after"})
    assert (report.total, report.verified) == (1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "”[1]" * 50_000,  # closers without openers
        "“" * 50_000 + "”[1]" * 50_000,  # deep nesting: every quote is long
        '"a" [1] ' * 50_000,
        "`" + "``" * 50_000,  # backtick runs of every parity
        "".join("`" * n + " " for n in range(1, 400)),  # runs of every length, none closed
        "[" + "1," * 100_000 + "1x",  # a marker that never closes
        "[1]" * 100_000,
    ],
)
def test_huge_adversarial_texts_take_linear_time(text: str) -> None:
    started = time.perf_counter()
    report = check_citations(text, "s", {1: "a " * 10_000})
    # A generous bound: each takes well under a second here; a quadratic scan takes minutes.
    assert time.perf_counter() - started < 10
    assert report.total == report.verified + len(report.flagged)
