"""Search over a local folder of documents (`MISSION_SEARCH_CORPUS`): private knowledge, no web.

The folder's html, markdown, text and pdf files are read into a BM25 index (tasks/retrievers/
bm25.py) the first time it is searched. The index is kept per folder for the life of the
process and brought up to date when files change: at most every `recheck_s` seconds the folder
is listed again (names, modification times, sizes) and only new or changed files are read.

Nothing outside the folder is ever read: a file, or a symlink, that resolves outside it is
refused, and so is anything that is not a regular file; links to folders and hidden entries
(`.git`) are not followed. A document's URL is `corpus:<path inside the folder>`
(percent-encoded, `/` between folders), stable across rebuilds; `read(url)` gives its text.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from core.sources import Hit, SearchError
from tasks.retrievers.base import MAX_SNIPPET_CHARS, clamp_limit, clean_query
from tasks.retrievers.bm25 import BM25, passage, words
from tasks.retrievers.text import extract, kind_of

log = logging.getLogger(__name__)

SCHEME = "corpus:"
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 2_000_000  # text kept per document (a huge pdf is cut, not refused)
Signature = tuple[int, int]  # modification time (ns), size


def url_of(relative: str) -> str:
    """The stable URL of the document at `relative` (a path inside the folder, `/`-separated)."""
    return SCHEME + quote(relative, safe="/")


@dataclass(frozen=True)
class Document:
    path: str  # inside the folder, `/`-separated
    signature: Signature
    title: str
    text: str
    terms: Counter[str]


@dataclass(frozen=True)
class _Index:
    documents: tuple[Document, ...]
    bm25: BM25


class _Folder:
    """One folder's documents and index, shared by every retriever of that folder."""

    def __init__(self, root: Path, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.lock = threading.Lock()
        self.index: _Index | None = None
        self.listing: dict[str, Signature] = {}
        self.documents: dict[str, Document] = {}
        self.problems: dict[str, str] = {}
        self.checked = -float("inf")

    def current(self, now: float, recheck_s: float) -> _Index:
        """The index, listing the folder again first when it was last listed `recheck_s` ago."""
        with self.lock:
            if self.index is not None and now - self.checked < recheck_s:
                return self.index
            listing, problems = _list(self.root)
            self.checked = now
            if self.index is not None and listing == self.listing:
                return self.index
            documents: dict[str, Document] = {}
            for path, signature in listing.items():
                known = self.documents.get(path)
                if known is not None and known.signature == signature:
                    documents[path] = known
                    continue
                try:
                    documents[path] = self.load(path, signature)
                except SearchError as exc:
                    problems[path] = exc.message
            for path, why in problems.items():
                if self.problems.get(path) != why:
                    log.warning("corpus %s: skipped %s: %s", self.root, path, why)
            self.listing, self.documents, self.problems = listing, documents, problems
            ordered = tuple(documents[p] for p in sorted(documents))
            self.index = _Index(ordered, BM25([d.terms for d in ordered]))
            return self.index

    def load(self, path: str, signature: Signature) -> Document:
        data = read_inside(self.root, path, self.max_file_bytes)
        try:
            extracted = extract(path, data)
        except Exception as exc:  # a third-party parser on an untrusted file: any failure
            raise SearchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        text = extracted.text[:MAX_TEXT_CHARS]
        terms = Counter(words(text))
        terms.update(words(extracted.title))  # the title once more: it says what the page is about
        return Document(path, signature, extracted.title, text, terms)


_FOLDERS: dict[tuple[Path, int], _Folder] = {}
_FOLDERS_LOCK = threading.Lock()


def _folder(root: Path, max_file_bytes: int) -> _Folder:
    with _FOLDERS_LOCK:
        if (root, max_file_bytes) not in _FOLDERS:
            _FOLDERS[root, max_file_bytes] = _Folder(root, max_file_bytes)
        return _FOLDERS[root, max_file_bytes]


class CorpusRetriever:
    """BM25 search over the documents of `folder`; hits are `corpus:` URLs with a passage of
    the document as snippet. Retrievers of the same folder share one index (per process)."""

    def __init__(
        self,
        folder: str | Path,
        recheck_s: float = 5.0,
        max_file_bytes: int = MAX_FILE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder)
        self.recheck_s = recheck_s
        self.max_file_bytes = max_file_bytes
        self._clock = clock

    def _shared(self) -> _Folder:
        try:
            root = self.folder.resolve(strict=True)
        except (OSError, RuntimeError):
            raise SearchError(f"the corpus folder {self.folder} does not exist") from None
        if not root.is_dir():
            raise SearchError(f"the corpus folder {self.folder} is not a folder")
        return _folder(root, self.max_file_bytes)

    def index(self) -> tuple[Document, ...]:
        """Every document of the folder, up to date (built now if it never was)."""
        return self._shared().current(self._clock(), self.recheck_s).documents

    def problems(self) -> dict[str, str]:
        """The files left out of the index at its last update, each with why."""
        shared = self._shared()
        with shared.lock:
            return dict(shared.problems)

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        terms = words(clean_query(query))
        found = self._shared().current(self._clock(), self.recheck_s)
        return [
            Hit(
                title=found.documents[number].title,
                url=url_of(found.documents[number].path),
                snippet=passage(found.documents[number].text, terms, MAX_SNIPPET_CHARS // 2),
            )
            for number, _ in found.bm25.search(terms, clamp_limit(limit))
        ]

    def read(self, url: str) -> str:
        """The text of the document at `url` (`corpus:<path>`), title first: its snapshot."""
        if not url.startswith(SCHEME):
            raise SearchError(f"not a corpus URL: {url[:200]!r}")
        path = unquote(url[len(SCHEME) :])
        parts = path.split("/")
        if not path or "\0" in path or path.startswith("/") or ".." in parts:
            raise SearchError(f"not a path inside the corpus: {path[:200]!r}")
        if kind_of(path) is None or any(p.startswith(".") for p in parts):
            raise SearchError(f"not a corpus document: {path[:200]!r}")
        shared = self._shared()
        with shared.lock:
            known = shared.documents.get(path)
        signature = _signature(shared.root / path)
        if known is None or known.signature != signature:
            known = shared.load(path, signature or (0, 0))
        return f"{known.title}\n\n{known.text}"


def _signature(path: Path) -> Signature | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


def _list(root: Path) -> tuple[dict[str, Signature], dict[str, str]]:
    """Every document under `root` with its signature, and the entries refused, with why.

    One stat per document: a plain file met while walking down from `root` without following
    links is inside it; only links are resolved and checked.
    """
    listing: dict[str, Signature] = {}
    problems: dict[str, str] = {}
    pending = [("", str(root))]
    while pending:
        prefix, folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError:
            continue  # an unreadable folder: nothing in it is indexed
        for entry in found:
            path = prefix + entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                why = _link_refusal(root, entry.path)
                if why is not None:
                    if why.startswith("a link to a folder") or kind_of(entry.name):
                        problems[path] = why
                    continue
            elif entry.is_dir(follow_symlinks=False):
                pending.append((path + "/", entry.path))
                continue
            if kind_of(entry.name) is None:
                continue
            try:
                info = entry.stat()  # a link's target: checked above
            except OSError:
                continue
            listing[path] = (info.st_mtime_ns, info.st_size)
    return listing, problems


def _link_refusal(root: Path, link: str) -> str | None:
    """Why the link at `link` may not be followed, or None for a link to a file inside."""
    try:
        real = Path(link).resolve(strict=True)
    except (OSError, RuntimeError):
        return "a broken link"
    if real.is_dir():
        return "a link to a folder (links to folders are not followed)"
    if not real.is_relative_to(root):
        return "resolves outside the corpus folder"
    return None


def read_inside(root: Path, path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file `path` under `root` (a resolved folder); SearchError if it
    resolves outside `root`, is not a regular file or is over `max_bytes`.

    The path is resolved and checked, opened without following a final link, and the file
    actually opened is checked again (Linux: /proc/self/fd), so a link swapped in between the
    check and the open is caught too.
    """
    real = (root / path).resolve()
    if not real.is_relative_to(root):
        raise SearchError(f"{path} resolves outside the corpus folder")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SearchError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SearchError(f"{path} is not a regular file")
        opened = _opened_path(fd)
        if opened is not None and not opened.is_relative_to(root):
            raise SearchError(f"{path} resolves outside the corpus folder")
        if info.st_size > max_bytes:
            raise SearchError(f"{path} is over {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise SearchError(f"{path} is over {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _opened_path(fd: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None  # no /proc here: the resolved path's check stands alone
