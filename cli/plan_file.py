"""Read a plan file (the JSON `mission plan` prints) for `mission run` and `mission schedule`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import InvalidInput


def read_plan_file(path: Path) -> dict[str, Any]:
    """A plan file's JSON object (validated later, with the goal), or InvalidInput saying why
    it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read plan file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"plan file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"plan file {path} is not a JSON object with 'goal' and 'subtasks'")
    return data
