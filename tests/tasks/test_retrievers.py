"""Retrievers: SearXNG against a fake on loopback, and BM25 over a local folder of documents."""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sources import SearchError
from core.web_guard import Allowlist, Blocked, check_url
from tasks.retrievers import CorpusRetriever, Retriever, SearxngRetriever
from tasks.retrievers.base import MAX_QUERY_CHARS
from tasks.retrievers.bm25 import BM25, passage, words
from tasks.retrievers.corpus import url_of
from tasks.retrievers.text import extract
from tests.fakes.corpus_docs import (
    ANSWERS,
    KNOWN_ANSWERS,
    NEAR_MISSES,
    KnownAnswer,
    pdf_bytes,
    write_corpus,
)
from tests.fakes.research_web import FACTS, ResearchWeb, serve_research_web
from tests.fakes.searxng import FakeSearxng, serve_searxng
from tests.fakes.web_pages import Canary
from tests.stack import free_port


@pytest.fixture(scope="module")
def web() -> Iterator[ResearchWeb]:
    with serve_research_web() as served:
        yield served


@pytest.fixture(scope="module")
def searx_server(web: ResearchWeb) -> Iterator[FakeSearxng]:
    with serve_searxng(web) as fake:
        yield fake


@pytest.fixture
def searx(searx_server: FakeSearxng) -> FakeSearxng:
    searx_server.reset()
    return searx_server


# --- SearXNG ---------------------------------------------------------------------------------


def test_searxng_hits_are_the_services_results_in_its_order(searx: FakeSearxng) -> None:
    hits = SearxngRetriever(searx.url).search("Velocargo chief executive", limit=5)
    expected = searx.results("Velocargo chief executive")[:5]
    assert [(h.url, h.title, h.snippet) for h in hits] == [
        (r["url"], r["title"], r["content"]) for r in expected
    ]
    # The old press release naming a former chief executive ranks first: decoys compete.
    assert hits[0].url == searx.web.url_of("velocargo-press-2016")
    company = next(h for h in hits if h.url == searx.web.url_of("velocargo"))
    assert FACTS["velocargo"]["ceo"] in company.snippet
    assert searx.params == [{"q": ["Velocargo chief executive"], "format": ["json"]}]


def test_searxng_keeps_the_operators_parameters_and_trims_the_query(searx: FakeSearxng) -> None:
    retriever = SearxngRetriever(searx.url + "?language=en&format=html")
    retriever.search("  cargo\n bikes  " + " word" * 200)
    sent = searx.params[0]
    assert sent["language"] == ["en"] and sent["format"] == ["json"]
    assert sent["q"][0].startswith("cargo bikes word")
    assert len(sent["q"][0]) <= MAX_QUERY_CHARS


def test_searxng_drops_hits_that_are_not_http_and_repeats(searx: FakeSearxng) -> None:
    for url in (
        "javascript:alert(1)",
        "ftp://files.example/x",
        "file:///etc/passwd",
        "magnet:?xt=urn:btih:0",
        "//no-scheme.example/",
        "http:///no-host",
        "http://[::1",
    ):
        searx.add_hit(url)
    searx.add_hit("http://127.0.0.1:9/canary", "Canary", "<b>loopback</b> &amp; more")
    searx.add_hit("HTTP://127.0.0.1:9/canary#again", "Same canary")
    hits = SearxngRetriever(searx.url).search("Torkline")
    # Loopback is kept: guarding hit URLs is the caller's job (core.web_guard), not the search's.
    assert hits[0].url == "http://127.0.0.1:9/canary"
    assert hits[0].snippet == "loopback & more"  # tags dropped, entities read
    assert all(h.url.startswith("http://127.0.0.1:") for h in hits)
    assert len([h for h in hits if "canary" in h.url]) == 1


def test_hits_at_loopback_or_private_addresses_are_for_the_guard_to_refuse(
    searx: FakeSearxng,
) -> None:
    """The retriever hands on what the service said; the SSRF guard, given the allowlist that
    opens the research web alone, refuses the canary and the private hosts before any request."""
    canary = Canary().start()
    try:
        searx.add_hit(canary.url + "/collect", "Canary")
        searx.add_hit("http://10.0.0.7/admin", "Private")
        searx.add_hit("http://[::ffff:169.254.169.254]/latest/meta-data/", "Metadata")
        hits = SearxngRetriever(searx.url).search("Torkline")
        allow = Allowlist.parse(searx.web.allow)
        refused = []
        for hit in hits:
            try:
                check_url(hit.url, allow)
            except Blocked as exc:
                refused.append((hit.title, exc.message))
        assert refused == [
            ("Canary", "127.0.0.1 is a loopback address"),
            ("Private", "10.0.0.7 is a private address"),
            (
                "Metadata",
                "::ffff:169.254.169.254 is the cloud metadata address (link-local), "
                "as IPv4 169.254.169.254 inside IPv6",
            ),
        ]
        assert len(hits) > 3  # the research web's own pages passed
        assert canary.contacts == []
    finally:
        canary.stop()


def test_searxng_limit_and_odd_results(searx: FakeSearxng) -> None:
    searx.extra_hits.extend(
        [{"url": 7}, "not a dict", {"url": "https://a.example/", "title": None, "content": 3}]  # type: ignore[list-item]
    )
    hits = SearxngRetriever(searx.url).search("cargo bikes", limit=3)
    assert len(hits) == 3
    assert (hits[0].title, hits[0].snippet) == ("https://a.example/", "")
    assert len(SearxngRetriever(searx.url).search("cargo bikes", limit=0)) == 1


@pytest.mark.parametrize(
    ("failure", "status", "message", "transient"),
    [
        ("status", 500, "search at 127.0.0.1:{port}: HTTP 500", True),
        ("status", 429, "search at 127.0.0.1:{port}: HTTP 429", True),
        ("status", 404, "search at 127.0.0.1:{port}: HTTP 404", False),
        ("not-json", 0, "search at 127.0.0.1:{port}: the answer is not JSON", False),
        ("malformed", 0, "search at 127.0.0.1:{port}: the answer is not JSON", False),
        ("no-results", 0, "search at 127.0.0.1:{port}: the answer has no list of results", False),
    ],
)
def test_searxng_failures_are_search_errors(
    searx: FakeSearxng, failure: str, status: int, message: str, transient: bool
) -> None:
    searx.failure, searx.status = failure, status  # type: ignore[assignment]
    with pytest.raises(SearchError) as caught:
        SearxngRetriever(searx.url + "?key=secret").search("cargo")
    port = searx.url.split(":")[2].split("/")[0]
    assert caught.value.message == message.format(port=port)
    assert caught.value.transient is transient
    assert "secret" not in caught.value.message  # the configured URL may carry a key


def test_searxng_without_the_json_format_says_so(searx: FakeSearxng) -> None:
    searx.failure, searx.status = "status", 403
    with pytest.raises(SearchError, match="does the instance enable the json format"):
        SearxngRetriever(searx.url).search("cargo")


def test_searxng_slow_huge_and_absent(searx: FakeSearxng) -> None:
    searx.delay_s = 1.0
    with pytest.raises(SearchError, match=r"no answer within 0\.2 s") as slow:
        SearxngRetriever(searx.url, timeout_s=0.2).search("cargo")
    assert slow.value.transient
    searx.delay_s, searx.failure = 0.0, "huge"
    with pytest.raises(SearchError, match="the answer is over 100000 bytes"):
        SearxngRetriever(searx.url, max_bytes=100_000).search("cargo")
    with pytest.raises(SearchError) as absent:
        SearxngRetriever(f"http://127.0.0.1:{free_port()}/search").search("cargo")
    assert absent.value.transient


def test_searxng_refuses_bad_configuration_and_empty_queries(searx: FakeSearxng) -> None:
    for url in ("file:///search", "searx.example/search", "http:///search"):
        with pytest.raises(SearchError, match="must be an http"):
            SearxngRetriever(url)
    with pytest.raises(SearchError, match="the search query is empty"):
        SearxngRetriever(searx.url).search(" \n\t ")
    assert searx.queries == []


def test_both_retrievers_are_retrievers(tmp_path: Path) -> None:
    retrievers: list[Retriever] = [
        SearxngRetriever("http://127.0.0.1:1/"),
        CorpusRetriever(tmp_path),
    ]
    assert all(callable(r.search) for r in retrievers)


# --- the corpus: relevance -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder, count=80)
    return folder


@pytest.mark.parametrize("known", KNOWN_ANSWERS, ids=lambda k: k.query)
def test_the_known_answer_ranks_first(corpus: Path, known: KnownAnswer) -> None:
    retriever = CorpusRetriever(corpus)
    hits = retriever.search(known.query, limit=5)
    assert hits[0].url == url_of(known.path)
    assert known.words in retriever.read(hits[0].url)
    assert known.words in hits[0].snippet


def test_near_misses_rank_below_their_answer(corpus: Path) -> None:
    hits = CorpusRetriever(corpus).search("torkline frame warranty years", limit=3)
    assert [h.url for h in hits] == [
        url_of("policies/torkline-warranty.md"),
        url_of("policies/velocargo-warranty.md"),
        url_of("reviews/torkline-longtail.html"),
    ]


def test_corpus_hits_carry_title_url_and_snippet(corpus: Path) -> None:
    hit = CorpusRetriever(corpus).search("Lieferung Zürich", limit=1)[0]
    assert hit.title == "Lieferung nach Zürich"
    assert hit.url == "corpus:notes/lieferung-z%C3%BCrich.md"
    assert "18 Franken" in hit.snippet
    assert CorpusRetriever(corpus).search("zebra xylophone") == []
    assert CorpusRetriever(corpus).search("?!", limit=3) == []


def test_pdf_text_is_found_and_read(corpus: Path) -> None:
    retriever = CorpusRetriever(corpus)
    hit = retriever.search("hanzo mule 720", limit=1)[0]
    assert hit.url == "corpus:specs/hanzo-mule.pdf"
    assert hit.title == "Hanzo Mule technical sheet"  # from the pdf's metadata
    text = retriever.read(hit.url)
    assert text.startswith("Hanzo Mule technical sheet\n\n")
    assert "battery capacity is 720 Wh" in " ".join(text.split())


def test_every_document_is_indexed_once(corpus: Path) -> None:
    documents = CorpusRetriever(corpus).index()
    assert len(documents) == 80
    paths = [d.path for d in documents]
    assert len(set(paths)) == 80
    assert {d.path for d in (*ANSWERS, *NEAR_MISSES)} <= set(paths)
    html = next(d for d in documents if d.path == "ops/depot-zwolle.html")
    assert "not page text" not in html.text  # scripts are not text


# --- the corpus: what it refuses -------------------------------------------------------------


def test_links_and_paths_that_lead_outside_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "inside.md").write_text("# Inside\n\nThe pineapple depot is open.")
    secret = tmp_path / "secret.txt"
    secret.write_text("launch codes for the pineapple depot")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "more.txt").write_text("more launch codes")
    (folder / "leak.txt").symlink_to(secret)
    (folder / "sub" / "deep-leak.txt").symlink_to("../../secret.txt")
    (folder / "linked-folder").symlink_to(tmp_path / "outside")
    (folder / "alias.md").symlink_to(folder / "inside.md")  # inside: fine
    (folder / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    retriever = CorpusRetriever(folder)

    assert [h.url for h in retriever.search("launch codes pineapple")] == [
        "corpus:alias.md",
        "corpus:inside.md",
    ]
    assert retriever.problems() == {
        "leak.txt": "resolves outside the corpus folder",
        "sub/deep-leak.txt": "resolves outside the corpus folder",
        "linked-folder": "a link to a folder (links to folders are not followed)",
        "dangling.txt": "a broken link",
    }
    for url, why in [
        ("corpus:leak.txt", "leak.txt resolves outside the corpus folder"),
        ("corpus:../secret.txt", "not a path inside the corpus"),
        ("corpus:%2E%2E/secret.txt", "not a path inside the corpus"),
        ("corpus:/etc/hostname", "not a path inside the corpus"),
        ("corpus:linked-folder/more.txt", "resolves outside the corpus folder"),
        ("corpus:.hidden/x.md", "not a corpus document"),
        ("corpus:inside.exe", "not a corpus document"),
        ("https://example.com/inside.md", "not a corpus URL"),
    ]:
        with pytest.raises(SearchError, match=why):
            retriever.read(url)
    assert "pineapple depot is open" in retriever.read("corpus:alias.md")


def test_what_is_not_a_readable_document_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\n\nA readable note about turnips.")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is no pdf turnips")
    (tmp_path / "big.txt").write_text("turnips " * 2000)
    os.mkfifo(tmp_path / "pipe.txt")  # opening it for reading would wait for a writer
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.md").write_text("turnips in a hidden folder")
    (tmp_path / ".hidden.md").write_text("hidden turnips")
    (tmp_path / "image.png").write_bytes(b"turnips")
    retriever = CorpusRetriever(tmp_path, max_file_bytes=10_000)
    assert [h.url for h in retriever.search("turnips")] == ["corpus:good.md"]
    problems = retriever.problems()
    assert set(problems) == {"broken.pdf", "big.txt", "pipe.txt"}
    assert problems["big.txt"] == "big.txt is over 10000 bytes"
    assert problems["pipe.txt"] == "pipe.txt is not a regular file"
    assert problems["broken.pdf"].startswith("cannot read broken.pdf: ")


def test_a_missing_folder_is_a_search_error_when_searched(tmp_path: Path) -> None:
    retriever = CorpusRetriever(tmp_path / "nowhere")  # built lazily: nothing read yet
    with pytest.raises(SearchError, match="does not exist"):
        retriever.search("anything")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SearchError, match="is not a folder"):
        CorpusRetriever(tmp_path / "file.txt").search("anything")


# --- the corpus: kept, shared, brought up to date --------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_index_follows_the_folder(tmp_path: Path) -> None:
    clock = Clock()
    retriever = CorpusRetriever(tmp_path, recheck_s=5.0, clock=clock)
    (tmp_path / "a.md").write_text("# A\n\napples and pears")
    (tmp_path / "b.txt").write_text("B\n\nbananas")
    first = retriever.index()
    assert retriever.index() is first  # nothing changed, nothing rebuilt

    (tmp_path / "c.html").write_text("<title>C</title><p>cherries</p>")
    assert retriever.search("cherries") == []  # not listed again yet
    clock.now = 5.0
    assert [h.url for h in retriever.search("cherries")] == ["corpus:c.html"]

    second = retriever.index()
    (tmp_path / "a.md").write_text("# A\n\nquinces and pears, no more of the old fruit")
    clock.now = 10.0
    assert [h.url for h in retriever.search("quinces")] == ["corpus:a.md"]
    assert retriever.search("apples") == []
    third = retriever.index()
    assert next(d for d in third if d.path == "b.txt") is next(
        d for d in second if d.path == "b.txt"
    )  # an unchanged file is not read again

    (tmp_path / "b.txt").unlink()
    clock.now = 15.0
    assert retriever.search("bananas") == []
    assert [d.path for d in retriever.index()] == ["a.md", "c.html"]


def test_a_file_changed_in_place_with_the_same_size_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("alpha")
    retriever = CorpusRetriever(tmp_path, recheck_s=0)
    assert retriever.search("alpha")
    path.write_text("gamma")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert retriever.search("alpha") == []
    assert retriever.read("corpus:a.txt").endswith("gamma")


def test_retrievers_of_one_folder_share_one_index_built_once(tmp_path: Path) -> None:
    write_corpus(tmp_path, count=40)
    indexes: list[object] = []
    retrievers = [CorpusRetriever(tmp_path) for _ in range(6)]
    threads = [threading.Thread(target=lambda r=r: indexes.append(r.index())) for r in retrievers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(indexes) == 6 and all(i is indexes[0] for i in indexes)


# --- pieces ----------------------------------------------------------------------------------


def test_words_fold_case_accents_and_split_cjk() -> None:
    assert words("Zürich's CAFÉ costs €4,890 — ﬁne snake_case") == [
        "zurich", "s", "cafe", "costs", "4", "890", "fine", "snake", "case"
    ]  # fmt: skip
    assert words("東京の電動自転車 iPhone用") == [
        "東京", "京の", "の電", "電動", "動自", "自転", "転車", "iphone", "用"
    ]  # fmt: skip
    assert words("한국어 텍스트") == ["한국어", "텍스트"]


def test_a_cjk_query_finds_its_document(tmp_path: Path) -> None:
    (tmp_path / "ja.txt").write_text("電動自転車の配達は大阪で始まりました。")
    (tmp_path / "en.txt").write_text("Deliveries started in Osaka.")
    assert [h.url for h in CorpusRetriever(tmp_path).search("自転車 大阪")] == ["corpus:ja.txt"]


def test_bm25_scores_by_the_formula() -> None:
    docs = [Counter(["cargo", "bike"]), Counter(["bike"] * 3), Counter(["van"])]
    index = BM25(docs)
    # N = 3, avgdl = 2; "cargo": df 1, idf ln(1 + 2.5/1.5); doc 0 has dl 2, tf 1.
    idf = math.log(1 + 2.5 / 1.5)
    [(number, score)] = index.search(["cargo"], 5)
    assert number == 0 and score == pytest.approx(idf * 1 * 2.5 / (1 + 1.5))
    ranked = index.search(["bike", "cargo"], 5)
    assert [number for number, _ in ranked] == [0, 1]
    assert index.search(["truck"], 5) == []
    assert BM25([]).search(["x"], 3) == []
    tied = BM25([Counter(["a"]), Counter(["a"])]).search(["a"], 2)
    assert [number for number, _ in tied] == [0, 1]  # equal scores in document order


def test_passage_picks_the_stretch_with_the_query_words() -> None:
    text = "Nothing here. " * 40 + "The Zwolle depot opens at 06:30 sharp. " + "Filler. " * 40
    piece = passage(text, {"zwolle", "depot", "06"}, width=80)
    assert "The Zwolle depot opens at 06:30" in piece
    assert piece.startswith("…") and piece.endswith("…")
    assert passage("Short text.", {"absent"}) == "Short text."


def test_extract_reads_each_kind() -> None:
    page = extract(
        "a.html",
        b"<html><head><title>T &amp; Co</title><style>p {}</style><script>x()</script></head>"
        b"<body><h1>Head</h1><p>Hello <b>world</b></p><div>two<script>y()</div></body></html>",
    )
    assert (page.title, page.text) == ("T & Co", "Head\n\nHello world\n\ntwo")
    assert extract("b.htm", b"<h1>Only a heading</h1><p>x").title == "Only a heading"
    note = extract(
        "n.md", b"---\ntitle: 'Front'\n---\n# Heading\n\nSome *text*, a [link](http://x)."
    )
    assert (note.title, note.text) == ("Front", "Heading\n\nSome text, a link.")
    plain = extract("p.txt", b"\xef\xbb\xbf\n\nFirst line\r\n\r\n\r\nsecond \xff")
    assert (plain.title, plain.text) == ("First line", "First line\n\nsecond \ufffd")
    assert extract("empty.txt", b"").title == "empty"
    pdf = extract("s.pdf", pdf_bytes("Sheet (v2)", "Line with (parens) and \\ backslash."))
    assert pdf.title == "Sheet (v2)"
    assert "Line with (parens) and \\ backslash." in pdf.text
    with pytest.raises(Exception):  # noqa: B017 - any parser error: the corpus skips the file
        extract("bad.pdf", b"not a pdf")
