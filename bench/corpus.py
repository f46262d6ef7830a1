"""Corpus search benchmark: `python -m bench.corpus` times the local corpus retriever.

It writes 1,000 small documents (html, markdown, text and a few pdf; tests/fakes/
corpus_docs.py) to a temporary folder, times building the index once, then times queries
side by side in one run:

- *ours*: `CorpusRetriever.search(query, 10)` with the BM25 index kept between queries and
  the folder not listed again (by default it is, at most every 5 s): tokenise, score, rank,
  cut snippets;
- *ours, listing every query*: the same with `recheck_s=0`, so each query also lists the
  folder and stats its 1,000 files to notice changes (the cost the default pays once in 5 s);
- *naive scan*: no index: every document's text tokenised and scored (the same BM25) for
  every query, what a retriever without an index does;
- *ideal*: a dictionary lookup of the query's precomputed hits, the floor of any retriever
  (the cost of handing back a result at all).

The target is 50 ms per query. It also checks that the known-answer queries put their
document first, and that the naive scan ranks the same documents as the index.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.report import CORPUS, write_section
from core.sources import Hit
from tasks.retrievers.bm25 import BM25, words
from tasks.retrievers.corpus import CorpusRetriever, Document, url_of
from tests.fakes.corpus_docs import BRANDS, CITIES, KNOWN_ANSWERS, NOUNS, write_corpus
from tests.load import percentile

ROOT = Path(__file__).resolve().parent.parent

TARGET_MS = 50.0
LIMIT = 10


def queries(count: int, seed: int) -> list[str]:
    """The known-answer queries, then random two-to-four-word queries over the corpus's words."""
    rng = random.Random(seed)
    vocabulary = [*BRANDS, *CITIES, *NOUNS, "warranty", "battery capacity", "depot", "price"]
    extra = [" ".join(rng.sample(vocabulary, rng.randint(2, 4))) for _ in range(count)]
    return [k.query for k in KNOWN_ANSWERS] + extra[: max(0, count - len(KNOWN_ANSWERS))]


def naive_search(documents: tuple[Document, ...], query: str, limit: int) -> list[str]:
    """BM25 without an index: tokenise and score every document for this one query."""
    counted = [Counter(words(d.text)) + Counter(words(d.title)) for d in documents]
    ranked = BM25(counted).search(words(query), limit)
    return [url_of(documents[number].path) for number, _ in ranked]


def timed(fn: Callable[[str], object], items: list[str]) -> list[float]:
    samples = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def shown(ms: float) -> str:
    return f"{ms:.2f} ms" if ms >= 0.1 else f"{ms * 1000:.1f} µs"


def row(name: str, samples: list[float]) -> str:
    median, p95 = statistics.median(samples), percentile(samples, 0.95)
    return (
        f"| {name} | {len(samples)} | {shown(median)} | {shown(p95)} | {shown(max(samples))} "
        f"| {median / TARGET_MS:.4f} / {p95 / TARGET_MS:.4f} |"
    )


def verdict(ok: bool) -> str:
    return "ok" if ok else "WRONG"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300, help="timed queries for ours")
    parser.add_argument("--naive", type=int, default=30, help="timed queries for the naive scan")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mission-corpus-bench-") as tmp:
        folder = Path(tmp)
        write_corpus(folder, count=args.documents, seed=args.seed)
        files = sum(len(names) for _, _, names in os.walk(folder))
        started = time.perf_counter()
        kept = CorpusRetriever(folder, recheck_s=3600)
        documents = kept.index()
        build_s = time.perf_counter() - started
        listing = CorpusRetriever(folder, recheck_s=0)
        asked = queries(args.queries, args.seed)
        for query in asked[:20]:  # warm up: first calls pay for imports and caches
            kept.search(query, LIMIT)
        answers: dict[str, list[Hit]] = {q: kept.search(q, LIMIT) for q in asked}

        ours = timed(lambda q: kept.search(q, LIMIT), asked)
        ours_listing = timed(lambda q: listing.search(q, LIMIT), asked)
        naive_asked = asked[: args.naive]
        naive = timed(lambda q: naive_search(documents, q, LIMIT), naive_asked)
        ideal = timed(lambda q: answers[q], asked)

        agree = sum(
            [h.url for h in answers[q]] == naive_search(documents, q, LIMIT) for q in naive_asked
        )
        first = [(k, answers[k.query][0].url if answers[k.query] else "-") for k in KNOWN_ANSWERS]

    pdfs = sum(d.path.endswith(".pdf") for d in documents)
    sizes = [len(d.text.split()) for d in documents]
    lines = [
        "## 6. Local corpus search",
        "",
        "Rewritten by `.venv/bin/python -m bench.corpus` (also run by `scripts/bench`).",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        f"Corpus: {len(documents)} documents ({files} files; html, markdown and text in turn, "
        f"{pdfs} pdf) of {min(sizes)}-{max(sizes)} words (median {statistics.median(sizes):.0f}), "
        f"from tests/fakes/corpus_docs.py (seed {args.seed}).",
        "",
        f"Index build, once, cold (read and extract every file, tokenise, BM25 postings): "
        f"{build_s * 1000:.0f} ms.",
        "",
        f"Per query (top {LIMIT} hits with snippets); target {TARGET_MS:.0f} ms:",
        "",
        "| retriever | queries | median | p95 | max | median / p95 vs target |",
        "|---|---|---|---|---|---|",
        row("ours (index kept, no listing)", ours),
        row("ours, listing the folder every query", ours_listing),
        row("naive scan (no index)", naive),
        row("ideal (dict lookup of the answer)", ideal),
        "",
        f"The naive scan ranked the same top {LIMIT} as the index for {agree} of "
        f"{len(naive_asked)} queries.",
        "",
        "Known-answer queries, first hit:",
        "",
        "| query | expected | first hit | |",
        "|---|---|---|---|",
        *(
            f"| {k.query} | `{url_of(k.path)}` | `{got}` | {verdict(got == url_of(k.path))} |"
            for k, got in first
        ),
    ]
    write_section(args.out, CORPUS, lines)
    print("\n".join(lines))
    correct = all(got == url_of(k.path) for k, got in first)
    return 0 if correct and agree == len(naive_asked) else 1


if __name__ == "__main__":
    sys.exit(main())
