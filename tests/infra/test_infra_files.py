"""The compose file, the Kubernetes manifests and scripts/scaleout name only settings that
exist and commands the image has, so they cannot drift from the code unnoticed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SETTING = re.compile(r"\bMISSION_[A-Z_]+\b")
# Variables of scripts/scaleout itself and of the compose file's substitutions, not settings.
NOT_SETTINGS = {
    "MISSION_SCALEOUT_DB",
    "MISSION_SCALEOUT_REDIS_HOST",
    "MISSION_SCALEOUT_REDIS_PORT",
    "MISSION_SCALEOUT_WORKERS",
    "MISSION_SCALEOUT_WORKER_LIMIT",
}


def _documents() -> list[tuple[str, Any]]:
    docs = [("compose.yaml", yaml.safe_load((INFRA / "compose.yaml").read_text()))]
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text())]
    return docs


def _commands(node: Any) -> list[list[str]]:
    """The command of every container (or compose service) of our image, as words."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        if "mission-control" in str(node.get("image", "")) and "command" in node:
            value = node["command"]
            words = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
            found.append(shlex.split(words[2]) if words[:2] == ["sh", "-c"] else words)
        for value in node.values():
            found += _commands(value)
    elif isinstance(node, list):
        for item in node:
            found += _commands(item)
    return found


def test_every_mission_setting_named_in_infra_exists() -> None:
    fields = {f"MISSION_{name.upper()}" for name in Settings.model_fields}
    texts = [p.read_text() for p in INFRA.rglob("*") if p.is_file()]
    texts.append((ROOT / "scripts" / "scaleout").read_text())
    named = {m for text in texts for m in SETTING.findall(text)} - NOT_SETTINGS
    assert named, "no MISSION_* setting found: the search is broken"
    assert named <= fields, f"not settings: {sorted(named - fields)}"


def test_every_container_runs_a_command_the_image_has() -> None:
    commands = [c for _, doc in _documents() for c in _commands(doc)]
    assert len(commands) >= 8
    for words in commands:
        program = words[0]
        assert program in {"prefect", "mission"}, words
        if program == "mission":
            assert words[1:] == ["up"], words  # the API replicas: `mission up`, API only


def test_every_prefect_command_in_infra_is_one_the_installed_prefect_knows() -> None:
    segments = {
        tuple(segment)
        for _, doc in _documents()
        for words in _commands(doc)
        for segment in _split(words, "&&")
        if segment[0] == "prefect"
    }
    assert len(segments) >= 6
    # Each command with `--help` after its words, in one child process (Prefect's CLI takes
    # seconds to import): a misspelt command or option exits non-zero.
    done = subprocess.run(
        [sys.executable, "-c", HELP_CHECK, json.dumps([list(s[1:]) for s in sorted(segments)])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == {" ".join(s[1:]): 0 for s in segments}, codes


HELP_CHECK = """
import contextlib, io, json, sys
from prefect.cli import app
codes = {}
for words in json.loads(sys.argv[1]):
    sys.argv = ["prefect", *words, "--help"]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            app()
        codes[" ".join(words)] = 0
    except SystemExit as exc:
        codes[" ".join(words)] = exc.code or 0
print(json.dumps(codes))
"""


def _split(words: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == separator:
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def test_the_image_copies_every_package_the_project_installs() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = set(re.findall(r'"(\w+)\*"', pyproject))
    assert packages and packages <= copied, packages - copied
    assert "prefect.yaml" in dockerfile  # the deploy step reads it


def test_kustomization_lists_every_manifest_and_secrets_are_documented() -> None:
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    manifests = {p.name for p in (INFRA / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    readme = (INFRA / "README.md").read_text()
    keys = {
        ref["key"]
        for name, doc in _documents()
        if name != "compose.yaml"
        for ref in _secret_refs(doc)
    }
    assert keys, "no secret reference found: the search is broken"
    for key in keys:
        assert f"--from-literal={key}=" in readme, f"the README does not say how to set {key}"


def _secret_refs(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        refs = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        return refs + [r for v in node.values() for r in _secret_refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in _secret_refs(item)]
    return []


@pytest.mark.parametrize(
    "variable",
    ["POSTGRES_PASSWORD", "MISSION_PASSWORD_HASH", "MISSION_SESSION_SECRET",
     "PREFECT_API_AUTH_STRING"],
)  # fmt: skip
def test_compose_refuses_to_start_without_its_secrets(variable: str) -> None:
    compose = (INFRA / "compose.yaml").read_text()
    assert f"${{{variable}:?" in compose
    assert f"{variable}=" in (INFRA / ".env.example").read_text()


def _containers() -> list[tuple[str, dict[str, Any]]]:
    """(name, container or compose service) of every piece that runs our image."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict):
            if "mission-control" in str(node.get("image", "")) and "command" in node:
                found.append((str(node.get("name", name)), node))
            for key, value in node.items():
                walk(value, str(key))
        elif isinstance(node, list):
            for item in node:
                walk(item, name)

    for _, doc in _documents():
        walk(doc, "")
    return found


def _environment(node: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> set[str]:
    """The variables a container or compose service gets: its own, and its ConfigMaps'."""
    env = node.get("environment") or node.get("env") or {}
    names = set(env) if isinstance(env, dict) else {item["name"] for item in env}
    for source in node.get("envFrom", []):
        names |= set(config_maps.get(source.get("configMapRef", {}).get("name", ""), {}))
    return names


def test_every_prefect_server_asks_for_credentials_and_every_client_sends_them() -> None:
    config_maps = {
        doc["metadata"]["name"]: doc["data"]
        for _, doc in _documents()
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap"
    }
    servers = clients = 0
    for name, node in _containers():
        command = " ".join(_commands(node)[0])
        env = _environment(node, config_maps)
        if command.startswith(("prefect server start", "prefect server services")):
            servers += 1
            assert "PREFECT_SERVER_API_AUTH_STRING" in env, name
            assert "PREFECT_SERVER_CORS_ALLOWED_ORIGINS" in env, name
        elif "PREFECT_API_URL" in env:
            clients += 1
            assert "PREFECT_API_AUTH_STRING" in env, name
    assert servers == 4 and clients >= 6  # compose and Kubernetes: API replicas + services


def test_prefects_port_is_published_on_loopback_only_and_the_api_trusts_only_the_proxy() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert "127.0.0.1:4200:4200" in published
    assert not [p for p in published if str(p).endswith(":4200") and not p.startswith("127.")]
    proxy = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["api"]["environment"]["MISSION_TRUSTED_PROXIES"] == proxy
    settings = next(
        doc for name, doc in _documents()
        if name == "settings.yaml" and doc["metadata"]["name"] == "mission-settings"
    )  # fmt: skip
    assert settings["data"]["MISSION_TRUSTED_PROXIES"]
