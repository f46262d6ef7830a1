"""Which failures a Prefect task retries: provider hiccups and model misbehaviour, not misuse."""

from __future__ import annotations

from typing import Any

from core.errors import ModelError, ProviderError


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except ProviderError as exc:
        return exc.transient
    except ModelError:
        return True
    except Exception:
        return False
    return False
