"""A folder of small documents for the corpus retriever's tests and benchmark, with known answers.

`write_corpus(folder, count)` writes `count` documents (html, markdown and text in turn, and a
few pdf) about the cargo-bike market: filler notes built from a fixed vocabulary, a handful of
*answer* documents that alone hold a fact, and *near misses* that share most of an answer's
words but not the fact. `KNOWN_ANSWERS` says, for a few queries, which document must come
first and which words of it prove it. Everything is derived from `seed`: the same call
writes the same bytes.
"""

from __future__ import annotations

import html
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownAnswer:
    query: str
    path: str  # the document that must rank first, inside the folder
    words: str  # words of that document that answer the query


@dataclass(frozen=True)
class Doc:
    path: str
    title: str
    text: str


# Answers, and near misses that share most of their words.
ANSWERS = (
    Doc(
        "policies/torkline-warranty.md",
        "Torkline warranty terms",
        "Torkline frames carry a seven-year warranty against cracks, counted in years from "
        "the day of delivery. Paint and tyres are not covered.",
    ),
    Doc(
        "specs/hanzo-mule.pdf",
        "Hanzo Mule technical sheet",
        "The Hanzo Mule battery capacity is 720 Wh and it charges in four hours from empty. "
        "The motor gives 250 W of continuous assistance.",
    ),
    Doc(
        "ops/depot-zwolle.html",
        "Zwolle depot",
        "The Zwolle depot opening time is 06:30 on weekdays; it keeps twelve Velocargo Haul 2 "
        "bikes and four trailers.",
    ),
    Doc(
        "people/greta-vollmer.txt",
        "Greta Vollmer",
        "Greta Vollmer did study mechanical engineering in Karlsruhe before she founded Nimbus "
        "Lastenrad in Freiburg.",
    ),
    Doc(
        "notes/lieferung-zürich.md",
        "Lieferung nach Zürich",
        "Die Lieferung nach Zürich kostet 18 Franken pro Fahrt, Rückfahrt inklusive.",
    ),
    Doc(
        "specs/ferrovelo-carro.pdf",
        "Ferrovelo Carro service sheet",
        "Inflate the Ferrovelo Carro tyres to a pressure of 3.5 bar; the front tyre wears first.",
    ),
)
NEAR_MISSES = (
    Doc(
        "policies/velocargo-warranty.md",
        "Velocargo warranty terms",
        "Velocargo frames carry a five-year warranty; batteries are covered for two years.",
    ),
    Doc(
        "reviews/torkline-longtail.html",
        "Torkline Longtail review",
        "The Torkline Longtail rides well and the frame is stiff, even after two years.",
    ),
    Doc(
        "specs/nimbus-battery.md",
        "Nimbus battery",
        "The Nimbus Schwerlast battery capacity is 625 Wh; a spare battery costs extra.",
    ),
    Doc(
        "specs/hanzo-trailer.txt",
        "Hanzo trailer",
        "The Hanzo trailer has no battery of its own and hitches to the Mule.",
    ),
    Doc(
        "ops/depot-utrecht.html",
        "Utrecht depot",
        "The Utrecht depot opening time is 07:00; it keeps thirty bikes.",
    ),
    Doc(
        "people/marit-janssen.txt",
        "Marit Janssen",
        "Marit Janssen did study economics in Groningen before she joined Velocargo.",
    ),
    Doc(
        "notes/lieferung-bern.md",
        "Lieferung nach Bern",
        "Die Lieferung nach Bern kostet 22 Franken pro Fahrt.",
    ),
    Doc(
        "specs/ferrovelo-tyres.md",
        "Ferrovelo tyres",
        "Ferrovelo asks riders to check tyre pressure every week.",
    ),
)
KNOWN_ANSWERS = (
    KnownAnswer("torkline frame warranty years", "policies/torkline-warranty.md", "seven-year"),
    KnownAnswer("hanzo mule battery capacity", "specs/hanzo-mule.pdf", "720 Wh"),
    KnownAnswer("zwolle depot opening time", "ops/depot-zwolle.html", "06:30"),
    KnownAnswer("where did greta vollmer study", "people/greta-vollmer.txt", "Karlsruhe"),
    KnownAnswer("Lieferung Zurich Franken", "notes/lieferung-zürich.md", "18 Franken"),
    KnownAnswer("ferrovelo carro tyre pressure", "specs/ferrovelo-carro.pdf", "3.5 bar"),
)

BRANDS = ("Velocargo", "Torkline", "Pedalfreight", "Quillon", "Hanzo", "Brindle", "Kestrel")
CITIES = ("Utrecht", "Aarhus", "Portland", "Lyon", "Osaka", "Bristol", "Turin", "Melbourne")
NOUNS = (
    "cargo box", "battery", "motor", "frame", "delivery route", "rider", "depot", "trailer",
    "brake", "chain", "hub gear", "canopy", "loading dock", "parcel", "fleet", "charger",
)  # fmt: skip
ADJECTIVES = ("steady", "noisy", "reliable", "heavy", "quick", "worn", "new", "cheap", "solid")
VERBS = ("reported", "replaced", "tested", "ordered", "repaired", "measured", "praised")
TOPICS = ("route planning", "rider feedback", "fleet service", "depot notes", "maintenance log")


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(BRANDS)} riders in {rng.choice(CITIES)} {rng.choice(VERBS)} a "
        f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} after {rng.randint(2, 40)} days, "
        f"and the {rng.choice(NOUNS)} was {rng.choice(ADJECTIVES)}."
    )


def filler(number: int, rng: random.Random) -> Doc:
    suffix = ("md", "html", "txt")[number % 3]
    topic = rng.choice(TOPICS)
    text = " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
    return Doc(f"notes/{number // 100:02d}/note-{number:04d}.{suffix}", f"{topic} {number}", text)


def documents(count: int, seed: int = 7, pdfs: int = 3) -> list[Doc]:
    """The corpus: answers, near misses, `pdfs` filler documents as pdf, the rest filler."""
    rng = random.Random(seed)
    fixed = [*ANSWERS, *NEAR_MISSES]
    if count < len(fixed):
        raise ValueError(f"a corpus with known answers needs at least {len(fixed)} documents")
    docs = [filler(n, rng) for n in range(count - len(fixed))]
    for n in range(min(pdfs, len(docs))):
        docs[n] = Doc(docs[n].path.rsplit(".", 1)[0] + ".pdf", docs[n].title, docs[n].text)
    return fixed + docs


def render(doc: Doc) -> bytes:
    """The document's file, as its suffix wants."""
    if doc.path.endswith(".pdf"):
        return pdf_bytes(doc.title, doc.text)
    if doc.path.endswith(".html"):
        return (
            f"<!doctype html><html><head><title>{html.escape(doc.title)}</title>"
            "<script>track('not page text')</script></head><body><nav>Home | Notes</nav>"
            f"<h1>{html.escape(doc.title)}</h1><p>{html.escape(doc.text)}</p></body></html>"
        ).encode()
    if doc.path.endswith(".md"):
        return f"# {doc.title}\n\n{doc.text}\n".encode()
    return f"{doc.title}\n\n{doc.text}\n".encode()


def write_corpus(folder: Path, count: int = 1000, seed: int = 7, pdfs: int = 3) -> list[Doc]:
    """Write the corpus of `count` documents under `folder`; returns what it wrote."""
    docs = documents(count, seed, pdfs)
    for doc in docs:
        path = folder / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(doc))
    return docs


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_bytes(title: str, text: str) -> bytes:
    """A minimal valid one-page PDF (Helvetica, Latin-1 text) with `title` in its metadata."""
    lines = [title, "", *textwrap.wrap(text, 80)]
    content = "BT /F1 11 Tf 56 780 Td 14 TL " + " ".join(f"{_pdf_string(s)} Tj T*" for s in lines)
    content += " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        f"<< /Length {len(content.encode('latin-1'))} >>\nstream\n{content}\nendstream",
        f"<< /Title {_pdf_string(title)} >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
