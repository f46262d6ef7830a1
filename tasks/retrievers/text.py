"""The title and plain text of a corpus document: html, markdown, plain text or pdf."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import islice
from pathlib import PurePosixPath

import pypdf

# Suffix -> how its text is read; anything else in a corpus folder is not a document.
KINDS = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
}
MAX_PDF_PAGES = 500
MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str


def kind_of(name: str) -> str | None:
    return KINDS.get(PurePosixPath(name).suffix.lower())


def extract(name: str, data: bytes) -> Extracted:
    """The title and text of the document `name` (its suffix says how to read `data`).

    The parsers meet untrusted files: callers treat any exception as "this document cannot
    be read", not as a failure of the corpus.
    """
    kind = kind_of(name)
    if kind == "pdf":
        title, text = _pdf(data)
    else:
        decoded = data.decode("utf-8-sig", errors="replace")
        if kind == "html":
            title, text = _html(decoded)
        elif kind == "markdown":
            title, text = _markdown(decoded)
        else:
            title, text = "", decoded
    text = _tidy(text)
    title = " ".join(title.split()) or _first_line(text) or PurePosixPath(name).stem
    return Extracted(title=title[:MAX_TITLE_CHARS], text=text)


_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


def _tidy(text: str) -> str:
    """Runs of spaces as one, blank lines as one, no spaces at line ends."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _first_line(text: str) -> str:
    return next((line for line in text.split("\n") if line.strip()), "")[:MAX_TITLE_CHARS]


class _PageText(HTMLParser):
    """Visible text of an HTML page: no scripts, styles, templates or head (but its title);
    block elements start new lines."""

    HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})
    BLOCKS = frozenset(
        {
            "p", "div", "br", "li", "ul", "ol", "tr", "td", "th", "table", "section",
            "article", "header", "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4",
            "h5", "h6", "pre", "blockquote", "dt", "dd", "figcaption", "hr", "title",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.h1: list[str] = []
        self._hidden: list[str] = []
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden.append(tag)
        elif tag == "h1":
            self._in_h1 = True
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN and tag in self._hidden:
            while self._hidden.pop() != tag:  # unclosed hidden elements end with it
                pass
        elif tag == "h1":
            self._in_h1 = False
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)
            if self._in_h1:
                self.h1.append(data)


def _html(page: str) -> tuple[str, str]:
    parser = _PageText()
    parser.feed(page)
    parser.close()
    return "".join(parser.title) or "".join(parser.h1), "".join(parser.parts)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*['\"]?(.*?)['\"]?[ \t]*$", re.M)
_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_MARKUP = re.compile(r"^[ ]{0,3}(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+|```.*|~~~.*)|[*_`]{1,3}", re.M)


def _markdown(page: str) -> tuple[str, str]:
    title = ""
    front = _FRONT_MATTER.match(page)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        title = found.group(1) if found else ""
        page = page[front.end() :]
    if not title and (heading := _HEADING.search(page)):
        title = heading.group(1)
    text = _MARKUP.sub("", _IMAGE_OR_LINK.sub(r"\1", page))
    return title, text


def _pdf(data: bytes) -> tuple[str, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    title = ""
    metadata = reader.metadata
    if metadata is not None and isinstance(metadata.title, str):
        title = metadata.title
    pages = (page.extract_text() or "" for page in islice(reader.pages, MAX_PDF_PAGES))
    return title, "\n\n".join(pages)
