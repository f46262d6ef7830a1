"""Okapi BM25 over a corpus held in memory, and the words it is made of (any script).

k1 = 1.5 and b = 0.75 are the textbook values: term frequency saturates after a few
occurrences and long documents are discounted most of the way; the corpus is small documents
of mixed length, where nothing argues for other values. The idf is Lucene's, which is never
negative: ln(1 + (N - df + 0.5) / (df + 0.5)). Each posting stores its term's whole
contribution, so a query only adds numbers up.
"""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

K1 = 1.5
B = 0.75

_ASCII_WORD = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"\w+")
# Han and kana have no spaces between words: they are indexed as overlapping character pairs.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# Combining accents (after NFKD): "Zürich" and "Zurich" are one word.
_ACCENTS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Case-folded, compatibility-normalised, without accents."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", _ACCENTS.sub("", decomposed))


def words(text: str) -> list[str]:
    """The terms of `text`: folded words (`_` splits them), Han and kana as character pairs."""
    folded = fold(text)
    if folded.isascii():
        return _ASCII_WORD.findall(folded)
    terms: list[str] = []
    for word in _WORD.findall(folded.replace("_", " ")):
        if not _CJK.search(word):
            terms.append(word)
            continue
        for piece in re.split(f"({_CJK.pattern})", word):
            if not piece:
                continue
            if _CJK.fullmatch(piece):
                terms.extend(piece[i : i + 2] for i in range(max(1, len(piece) - 1)))
            else:
                terms.append(piece)
    return terms


class BM25:
    """An immutable BM25 index over documents given as term counts."""

    def __init__(self, documents: Sequence[Counter[str]], k1: float = K1, b: float = B) -> None:
        self.size = len(documents)
        lengths = [sum(counts.values()) for counts in documents]
        average = (sum(lengths) / self.size) if self.size else 0.0
        frequency: Counter[str] = Counter()
        for counts in documents:
            frequency.update(counts.keys())
        idf = {
            term: math.log(1 + (self.size - df + 0.5) / (df + 0.5))
            for term, df in frequency.items()
        }
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for number, counts in enumerate(documents):
            norm = k1 * (1 - b + b * lengths[number] / average) if average else k1
            for term, tf in counts.items():
                weight = idf[term] * tf * (k1 + 1) / (tf + norm)
                self.postings.setdefault(term, []).append((number, weight))

    def search(self, terms: Iterable[str], limit: int) -> list[tuple[int, float]]:
        """The `limit` best documents for `terms` as (document number, score), best first;
        equal scores in document order. Documents that share no term are not returned."""
        scores: dict[int, float] = {}
        for term in set(terms):
            for number, weight in self.postings.get(term, ()):
                scores[number] = scores.get(number, 0.0) + weight
        best = heapq.nsmallest(limit, scores.items(), key=lambda item: (-item[1], item[0]))
        return [(number, score) for number, score in best]


def passage(text: str, terms: Iterable[str], width: int = 240, scan: int = 50_000) -> str:
    """The stretch of about `width` characters of `text` that holds the most distinct `terms`
    (looked for in its first `scan` characters), on one line; the opening when none is there."""
    wanted = {t for t in terms if t}
    head = text[:scan]
    spots: list[tuple[int, str]] = [
        (m.start(), term) for m in _WORD.finditer(head) if (term := fold(m.group())) in wanted
    ]
    start, best, first = 0, 0, 0
    seen: Counter[str] = Counter()
    for position, term in spots:  # a window sliding over the matches
        seen[term] += 1
        while position - spots[first][0] > width // 2:
            seen[spots[first][1]] -= 1
            if not seen[spots[first][1]]:
                del seen[spots[first][1]]
            first += 1
        if len(seen) > best:
            best, start = len(seen), spots[first][0]
    begin = max(0, start - width // 4) if best else 0
    if begin:
        space = head.find(" ", begin)
        begin = space + 1 if 0 <= space < start else begin
    piece = " ".join(text[begin : begin + width].split())
    cut = begin + width < len(text)
    if cut and " " in piece:
        piece = piece.rsplit(" ", 1)[0]
    return ("…" if begin else "") + piece + ("…" if cut else "")
