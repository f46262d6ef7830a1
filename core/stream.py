"""Streamed output: the text of a reply while the model is still writing it.

A subtask answers by a tool call (or a JSON object) whose `output` field is its text; while
the reply streams in, what has arrived is a prefix of that JSON. `partial_string` reads the
field's text out of such a prefix, so the page can show it growing. Pure code: the providers
call it with what they received, `tasks/deltas.py` sends what is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from core.errors import ConfigurationError

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITE = " \t\r\n"


def partial_string(prefix: str, key: str = "output") -> str:
    """The text of the top-level string field `key` in `prefix`, the start of a JSON object,
    as far as it has arrived ("" when it has not started). A half-received escape sequence
    is left out until its end arrives, so the text only ever grows."""
    reader = PartialString(key)
    return reader.feed(prefix)


class PartialString:
    """`partial_string` fed piece by piece, reading each piece once (a long reply arrives
    in hundreds of pieces: reading the whole prefix again for each would cost its square)."""

    def __init__(self, key: str = "output") -> None:
        self._key = key
        self._received = ""
        self._at: int | None = None  # where the value's next unread character is
        self._parts: list[str] = []
        self._text = ""
        self._ended = False

    def feed(self, piece: str) -> str:
        """The text so far, after `piece` (the next part of the JSON) has arrived."""
        self._received += piece
        if self._ended:
            return self._text
        if self._at is None:
            self._at = _value_start(self._received, self._key)
            if self._at is None:
                return ""
        read, self._at, self._ended = _decode(self._received, self._at)
        if read:
            self._parts.append(read)
            self._text = "".join(self._parts)
        return self._text


def _decode(prefix: str, i: int) -> tuple[str, int, bool]:
    """The string's characters from `i` on, as far as they have arrived: (text, where to
    go on from, whether the closing quote came)."""
    out: list[str] = []
    n = len(prefix)
    while i < n:
        c = prefix[i]
        if c == '"':
            return "".join(out), i, True
        if c != "\\":
            j = i
            while j < n and prefix[j] not in '"\\':
                j += 1
            out.append(prefix[i:j])
            i = j
            continue
        if i + 1 >= n:
            break
        e = prefix[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
            continue
        if e != "u" or i + 6 > n:
            break
        code = int(prefix[i + 2 : i + 6], 16)
        if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
            if i + 12 > n:
                break
            out.append(json.loads(f'"{prefix[i : i + 12]}"'))
            i += 12
            continue
        out.append(chr(code))
        i += 6
    return "".join(out), i, False


_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*')


def _value_start(prefix: str, key: str) -> int | None:
    """Where the string value of top-level `key` starts (after its opening quote)."""
    depth, i, n = 0, 0, len(prefix)
    while i < n:
        c = prefix[i]
        if c in "{[":
            depth += 1
            i += 1
        elif c in "}]":
            depth -= 1
            i += 1
        elif c == '"':
            match = _KEY.match(prefix, i) if depth == 1 else None
            if match is not None and _is_key_position(prefix, i):
                name = json.loads(f'"{match.group(1)}"')
                j = match.end()
                if name == key:
                    return j + 1 if j < n and prefix[j] == '"' else None
                i = j
                continue
            i = _string_end(prefix, i)
        else:
            i += 1
    return None


def _is_key_position(prefix: str, quote: int) -> bool:
    """Whether the string starting at `quote` follows `{` or `,` (a key, not a value)."""
    j = quote - 1
    while j >= 0 and prefix[j] in _WHITE:
        j -= 1
    return j >= 0 and prefix[j] in "{,"


def _string_end(prefix: str, quote: int) -> int:
    """The index after the string starting at `quote` (len(prefix) when it has not ended)."""
    i, n = quote + 1, len(prefix)
    while i < n:
        if prefix[i] == "\\":
            i += 2
        elif prefix[i] == '"':
            return i + 1
        else:
            i += 1
    return n


# --- the side channel: what a goal run sends the API while its subtasks write ------------

DELTA_TTL_S = 3600  # a goal run's streamed text is kept this long after its last delta
REDIS_CHANNEL = "mission:deltas"


def redis_text_key(run: str) -> str:
    """The Redis hash of a goal run's text so far, one field per subtask (scale-out)."""
    return f"mission:text:{run}"


class Delta(BaseModel):
    """Text a subtask's model appended to its output. `end` is the length of its text so far
    with this appended, so a reader that saw some of it already keeps only what is new;
    `restart` says the text starts again here (a new attempt)."""

    run: str = Field(max_length=64)
    subtask: str = Field(max_length=64)
    text: str
    end: int = Field(ge=0)
    restart: bool = False


def delta_socket(home: Path, owner: int | None = None) -> Path:
    """A datagram socket for an API's deltas, in a directory only this user can enter (under
    the temporary directory, not under MISSION_HOME: a socket's path must be short): one per
    MISSION_HOME, or per `owner` (`mission up` makes one for itself and tells its runner, so
    two stacks on one MISSION_HOME never take each other's)."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    name = "deltas.sock" if owner is None else f"deltas-{owner}.sock"
    return Path(tempfile.gettempdir()) / f"mission-{os.getuid()}-{digest}" / name


def private_dir(path: Path) -> Path:
    """`path`, created if missing, refused unless it is a directory of this user that no one
    else may enter (so no other user can send the API text or read the socket)."""
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigurationError(f"{path} is not a private directory of this user")
    return path
