"""The Anthropic adapter: the only module that imports `anthropic`.

`ANTHROPIC_BASE_URL` (read by the SDK itself) points the same code at any Anthropic-compatible
endpoint. The installed SDK has no `temperature` argument (Anthropic's current Messages API
dropped it), so a tier's or subtask's temperature is sent as an extra body field only where
`MISSION_SEND_TEMPERATURE` says so: by default, to endpoints other than Anthropic's own
(Ollama, vLLM and gateways still honour it).

The SDK retries 408/409/429/5xx and connection errors `sdk_max_retries` times, honouring
`retry-after`; whatever still fails is turned into a ProviderError here and nowhere
else, marked transient when another attempt later may succeed.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic

from core.errors import ConfigurationError, ModelError, ProviderError
from core.gateway import ModelRequest, ModelSpec, Reply
from core.pricing import priced
from core.settings import Settings


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        self._send_temperature = settings.sends_temperature
        try:
            self._client = anthropic.Anthropic(
                max_retries=settings.sdk_max_retries, timeout=settings.model_timeout_s
            )
        except anthropic.AnthropicError as exc:
            raise ConfigurationError(f"cannot create the Anthropic client: {exc}") from None

    def complete(self, spec: ModelSpec, request: ModelRequest) -> Reply:
        system: list[dict[str, Any]] = [{"type": "text", "text": request.system}]
        if request.cache_system:
            system[0]["cache_control"] = {"type": "ephemeral"}
        content: list[dict[str, Any]] = [
            {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": "image/png",
                    "data": base64.b64encode(png).decode("ascii"),
                },
            }
            for png in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        who = f"{request.label}: " if request.label else ""
        params: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": content}],
            "tools": [
                {
                    "name": request.tool.name,
                    "description": request.tool.description,
                    "input_schema": request.tool.schema,
                }
            ],
            "tool_choice": {"type": "tool", "name": request.tool.name},
        }
        if self._send_temperature:
            params["extra_body"] = {"temperature": spec.temperature}
        try:
            message = self._client.messages.create(**params)
        except (anthropic.RateLimitError, anthropic.InternalServerError) as exc:
            raise ProviderError(f"{who}{spec.model} answered {exc.status_code}", True) from None
        except anthropic.APITimeoutError:
            raise ProviderError(f"{who}{spec.model} did not answer in time", True) from None
        except anthropic.APIConnectionError as exc:
            raise ProviderError(f"{who}cannot reach the model provider: {exc}", True) from None
        except anthropic.APIStatusError as exc:
            raise ProviderError(
                f"{who}{spec.model} refused the request ({exc.status_code}): {exc.message}"
            ) from None

        u = message.usage
        usage = priced(
            message.model or spec.model,
            u.input_tokens,
            u.output_tokens,
            u.cache_creation_input_tokens or 0,
            u.cache_read_input_tokens or 0,
        )
        if message.stop_reason == "max_tokens":
            raise ModelError(
                f"{who}{spec.model} ran out of tokens ({spec.max_tokens}) before finishing",
                usage.model_dump(),
            )
        if message.stop_reason == "refusal":
            raise ModelError(f"{who}{spec.model} refused to answer", usage.model_dump())
        for block in message.content:
            if block.type == "tool_use" and block.name == request.tool.name:
                if not isinstance(block.input, dict):
                    break
                return Reply(data=dict(block.input), model=message.model or spec.model, usage=usage)
        raise ModelError(
            f"{who}{spec.model} did not answer with the {request.tool.name} tool "
            f"(stop_reason {message.stop_reason})",
            usage.model_dump(),
        )
