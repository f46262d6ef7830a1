"""The real-model tier: llama.cpp's llama-server with a tiny model (scripts/real-model), on
loopback, for the whole session. The first run builds llama-server (many minutes, cached
outside the repository); later runs start it in seconds."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import DEFAULT_TIERS
from tests.conftest import reset_settings
from tests.stack import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "real-model"
BUILD_AND_START_S = 3600.0  # a first build on 2 busy cores; a cached start takes seconds
MODEL = "smollm2-135m-instruct"  # llama-server serves whatever name it is asked for


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`scripts/real-model serve` on a free loopback port, once it answers /health."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SCRIPT), "serve", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(f"llama-server exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() - started > BUILD_AND_START_S:
                pytest.fail("llama-server did not answer /health in time")
            time.sleep(0.5)
        print(f"\nllama-server answered /health after {time.monotonic() - started:.1f} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def real_model(llama_server: str, settings_env: pytest.MonkeyPatch) -> str:
    """Every tier served by the tiny model, structured output as JSON schemas (what works on
    llama-server), unpriced; a few hundred tokens per reply (a thousand for the planner and
    the join) so a 2-core machine keeps up."""
    tiers = {
        name: {
            "model": MODEL,
            "temperature": 0.0,  # greedy: the same prompts get the same replies, run to run
            "max_tokens": 1024 if name in ("deep", "writer") else 384,  # a plan is longer
            "timeout_s": 300,
        }
        for name in DEFAULT_TIERS
    }
    settings_env.setenv("ANTHROPIC_BASE_URL", llama_server)
    settings_env.setenv("MISSION_TIERS", json.dumps(tiers))
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    # The plan tool's schema bounds what a grammar-constrained reply may hold; a tiny model
    # left unbounded fills any token budget with one endless plan.
    settings_env.setenv("MISSION_MAX_SUBTASKS", "4")
    settings_env.setenv("MISSION_MAX_INSTRUCTION_CHARS", "160")
    reset_settings()
    return llama_server
