"""The Anthropic adapter: the only module that imports `anthropic`.

`ANTHROPIC_BASE_URL` (read by the SDK itself) points the same code at any Anthropic-compatible
endpoint. The installed SDK has no `temperature` argument (Anthropic's current Messages API
dropped it), so a tier's or subtask's temperature is sent as an extra body field only where
`MISSION_SEND_TEMPERATURE` says so: by default, to endpoints other than Anthropic's own
(Ollama, vLLM and gateways still honour it).

The SDK retries 408/409/429/5xx and connection errors `sdk_max_retries` times, honouring
`retry-after`; whatever still fails is turned into a ProviderError here and nowhere
else, with the server's own message, marked transient when another attempt later may
succeed. An error whose message says the request can never succeed as sent (an unsupported
input, an unknown model) is permanent whatever its status: llama.cpp's llama-server answers
an image sent to a text-only model with 500 "image input is not supported", which must be
sent once, not once per retry.

Structured output comes one of two ways (MISSION_STRUCTURED): `tools`, a forced tool call
on /v1/messages; or `json_schema`, the endpoint's OpenAI-style /v1/chat/completions with a
`response_format` JSON schema. llama-server turns a forced tool_choice into "required" and
lets the model write prose first (a small model writes it until max_tokens), and its
/v1/messages passes no response_format or grammar through; its /v1/chat/completions
compiles the schema into a grammar that constrains the reply from its first token.

Requests go through the SDK's async client on one event loop thread per process
(core/loop_thread.py): a subtask thread waits for its reply, and when the goal run stops the
request is cancelled there and then, closing its connection, so a stopped run pays for no
more of it.

A request with `on_text` is streamed (tools mode): the tool input's JSON arrives in pieces and
`on_text` sees its `output` text grow (core/stream.py reads it out of the pieces); the final
message is then checked as an unstreamed one is. The json_schema mode does not stream: it
calls `on_text` once, with the whole text.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import ssl
from collections.abc import Callable
from typing import Any

import anthropic
import httpcore2
import httpx2
from anthropic.types import Message

from core.errors import ConfigurationError, ModelError, ProviderError
from core.gateway.types import ModelRequest, ModelSpec, Reply, Tool
from core.loop_thread import LoopThread
from core.pricing import Usage, priced
from core.settings import Settings
from core.sources import Hit
from core.stop import NEVER, Stop
from core.stream import PartialString

# What endpoints say of a request that no retry can help, whatever status they answer with.
PERMANENT = re.compile(
    r"not supported|unsupported|mmproj|unknown model|model .*not found|no such model"
    r"|does not exist|invalid model",
    re.IGNORECASE,
)
RETRIED_STATUSES = frozenset({408, 409, 429})
# An error event inside a streamed reply comes after its 200: the status its type stands for.
STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "billing_error": 402,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def is_transient(status: int, message: str) -> bool:
    """Whether another attempt may succeed: 408/409/429 and 5xx, unless the message says
    the request cannot work (a 4xx other than those never can)."""
    return (status in RETRIED_STATUSES or status >= 500) and not PERMANENT.search(message)


class _NoRetryOfPermanentErrors(anthropic.Middleware):
    """Tells the SDK's retry loop not to send again a request the server called impossible."""

    async def handle_async(
        self, request: anthropic.APIRequest, call_next: anthropic.AsyncCallNext
    ) -> Any:
        response = await call_next(request)
        raw = response.http_response
        if raw.status_code >= 500:
            await raw.aread()
            if PERMANENT.search(raw.text):
                raw.headers["x-should-retry"] = "false"
        return response


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The SDK's own default TLS context (httpcore2's), made once per process. The SDK makes
    one per client, loading the whole CA bundle: profiled, about 37 ms of CPU on the path to
    a goal run's first model call. The fork server makes it, and every goal run inherits it
    (a context verifies the same however many connections share it)."""
    return httpcore2.default_ssl_context()


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        self._send_temperature = settings.sends_temperature
        self._structured = settings.structured
        self._loop = LoopThread("mission-model")
        try:
            self._client = anthropic.AsyncAnthropic(
                max_retries=settings.sdk_max_retries,
                timeout=settings.model_timeout_s,
                middleware=[_NoRetryOfPermanentErrors()],
                # The SDK's defaults (limits, redirects, keep-alive, proxies), its context.
                http_client=anthropic.DefaultAsyncHttpxClient(verify=tls_context()),
            )
        except anthropic.AnthropicError as exc:
            raise ConfigurationError(f"cannot create the Anthropic client: {exc}") from None

    def complete(self, spec: ModelSpec, request: ModelRequest, stop: Stop = NEVER) -> Reply:
        if self._structured == "json_schema":
            return self._loop.run(self._complete_json(spec, request), stop)
        return self._loop.run(self._complete(spec, request), stop)

    async def _complete(self, spec: ModelSpec, request: ModelRequest) -> Reply:
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
        if request.on_text is None:
            message = await self._send(params, who, spec)
        else:
            message = await self._stream(params, who, spec, request.on_text)
        return _tool_reply(message, request.tool, who, spec)

    async def _complete_json(self, spec: ModelSpec, request: ModelRequest) -> Reply:
        """The tool's input as a JSON reply of /v1/chat/completions, its schema enforced."""
        who = f"{request.label}: " if request.label else ""
        content: list[dict[str, Any]] = [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            }
            for png in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        body: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "messages": [
                {
                    "role": "system",
                    "content": f"{request.system}\n\n{_json_instruction(request.tool)}",
                },
                {"role": "user", "content": content},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": request.tool.name,
                    "schema": fit_to_tokens(request.tool.schema, spec.max_tokens),
                },
            },
        }
        if self._send_temperature:
            body["temperature"] = spec.temperature
        answer = await self._send_chat(body, who, spec)
        usage = _chat_usage(answer, spec.model)
        choice = (answer.get("choices") or [{}])[0]
        if choice.get("finish_reason") == "length":
            raise ModelError(
                f"{who}{spec.model} ran out of tokens ({spec.max_tokens}) before finishing",
                usage.model_dump(),
            )
        text = str((choice.get("message") or {}).get("content") or "")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ModelError(
                f"{who}{spec.model} did not answer with a JSON object for {request.tool.name}",
                usage.model_dump(),
            )
        if request.on_text is not None and isinstance(data.get("output"), str):
            request.on_text(data["output"])
        return Reply(data=data, model=str(answer.get("model") or spec.model), usage=usage)

    async def _send(self, params: dict[str, Any], who: str, spec: ModelSpec) -> Any:
        """One Messages request; the SDK's typed errors become ProviderErrors here."""
        try:
            return await self._client.messages.create(**params, timeout=spec.timeout_s)
        except anthropic.APIError as exc:
            raise _provider_error(exc, who, spec) from None

    async def _stream(
        self, params: dict[str, Any], who: str, spec: ModelSpec, on_text: Callable[[str], None]
    ) -> Message:
        """One Messages request, streamed: `on_text` gets the tool input's `output` text each
        time it has grown. Leaving the `async with` (cancelled too) closes the connection."""
        output, shown = PartialString(), ""
        try:
            # The SDK's timeout limits each wait for a piece; the tier's limits the reply.
            async with (
                asyncio.timeout(spec.timeout_s),
                self._client.messages.stream(**params, timeout=spec.timeout_s) as stream,
            ):
                async for event in stream:
                    if event.type == "input_json":
                        text = output.feed(event.partial_json)
                        if text != shown:
                            shown = text
                            on_text(text)
                return await stream.get_final_message()
        except TimeoutError:
            raise ProviderError(
                f"{who}{spec.model} did not answer in time ({spec.timeout_s:g} s)", True
            ) from None
        except anthropic.APIError as exc:
            raise _provider_error(exc, who, spec) from None
        # Once the stream is open the SDK no longer turns the transport's errors into its own.
        except httpx2.TimeoutException as exc:
            raise _provider_error(anthropic.APITimeoutError(exc.request), who, spec) from None
        except httpx2.TransportError as exc:
            error = anthropic.APIConnectionError(message=str(exc), request=exc.request)
            raise _provider_error(error, who, spec) from None

    async def _send_chat(self, body: dict[str, Any], who: str, spec: ModelSpec) -> dict[str, Any]:
        """One OpenAI-style chat completion, through the same client, retries and errors."""
        try:
            answer = await self._client.post(
                "/v1/chat/completions",
                cast_to=object,
                body=body,
                options={"timeout": spec.timeout_s},
            )
        except anthropic.NotFoundError as exc:
            raise ProviderError(
                f"{who}this endpoint has no /v1/chat/completions ({exc.status_code}), so "
                "MISSION_STRUCTURED=json_schema cannot work here; use MISSION_STRUCTURED=tools"
            ) from None
        except anthropic.APIError as exc:
            raise _provider_error(exc, who, spec) from None
        if not isinstance(answer, dict):
            raise ProviderError(f"{who}{spec.model} answered something other than JSON", True)
        return answer

    def web_search(self, spec: ModelSpec, query: str, limit: int, stop: Stop = NEVER) -> list[Hit]:
        """The hits of Anthropic's server-side web search tool for `query`, in its order."""
        return self._loop.run(self._web_search(spec, query, limit), stop)

    async def _web_search(self, spec: ModelSpec, query: str, limit: int) -> list[Hit]:
        params: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "messages": [{"role": "user", "content": f"Search the web for: {query}"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
        }
        message = await self._send(params, "search: ", spec)
        hits: list[Hit] = []
        for block in message.content:
            if block.type == "web_search_tool_result" and isinstance(block.content, list):
                hits.extend(
                    Hit(title=result.title, url=result.url)
                    for result in block.content
                    if result.type == "web_search_result"
                )
            elif block.type == "web_search_tool_result":
                code = getattr(block.content, "error_code", "unknown")
                raise ProviderError(f"search: the web search tool failed ({code})", True)
        return hits[:limit]


def _tool_reply(message: Message, tool: Tool, who: str, spec: ModelSpec) -> Reply:
    """The forced tool's input, priced; a truncated, refused or toolless reply is a
    ModelError that keeps its cost."""
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
        if block.type == "tool_use" and block.name == tool.name:
            if not isinstance(block.input, dict):
                break
            return Reply(data=dict(block.input), model=message.model or spec.model, usage=usage)
    raise ModelError(
        f"{who}{spec.model} did not answer with the {tool.name} tool "
        f"(stop_reason {message.stop_reason})",
        usage.model_dump(),
    )


def _provider_error(exc: anthropic.APIError, who: str, spec: ModelSpec) -> ProviderError:
    """The SDK's error in words, with the server's own message; transient when worth another
    attempt later."""
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(
            f"{who}{spec.model} did not answer in time ({spec.timeout_s:g} s)", True
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"{who}cannot reach the model provider: {exc}", True)
    if isinstance(exc, anthropic.APIStatusError):
        said = exc.api_message or _body_text(exc) or exc.message
        status = exc.status_code
        if status < 400:
            status = STREAM_ERROR_STATUS.get(exc.type or "", 500)
        transient = is_transient(status, said)
        verb = f"answered {status}" if transient else f"refused the request ({status})"
        return ProviderError(f"{who}{spec.model} {verb}: {said}", transient)
    return ProviderError(f"{who}{spec.model}: {exc.message}", True)


def _body_text(exc: anthropic.APIStatusError) -> str:
    """The message of an error body that is not Anthropic's shape (OpenAI's, or plain text)."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return body if isinstance(body, str) else ""


TOKENS_PER_LISTED_OBJECT = 192  # a plan's subtask, as JSON: id, title, instruction, kind, tier


def fit_to_tokens(schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The schema bounded so that the reply fits into `max_tokens` (at 2 characters a
    token): its unbounded top-level strings get a `maxLength`; its top-level lists of
    objects a `maxItems` (TOKENS_PER_LISTED_OBJECT each), and the strings of each listed
    object a share of that object's characters, in proportion to their own maxima. The
    endpoint compiles the schema into a grammar, so a string must close and a list must end
    in time: a model that repeats itself, as small ones do (SmolLM2 repeats a sentence, or
    lists the same subtask, until it runs out), ends its answer instead of running out of
    tokens in the middle of it."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    open_ended = [
        name
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get("type") == "string" and "maxLength" not in spec
    ]
    share = max(32, max_tokens * 2 // (len(open_ended) + 1))
    bounded = {name: {**properties[name], "maxLength": share} for name in open_ended}
    for name, spec in properties.items():
        items = spec.get("items") if isinstance(spec, dict) else None
        if spec.get("type") == "array" and isinstance(items, dict) and "properties" in items:
            fitting = max(
                1, min(spec.get("maxItems", 1000), max_tokens // TOKENS_PER_LISTED_OBJECT)
            )
            bounded[name] = {
                **spec,
                "maxItems": fitting,
                "items": _fit_object(items, max_tokens * 2 // fitting),
            }
    if not bounded:
        return schema
    return {**schema, "properties": {**properties, **bounded}}


def _fit_object(item: dict[str, Any], chars: int) -> dict[str, Any]:
    """A listed object's schema, its free strings sharing `chars` in proportion to their
    maxima (an unbounded one counts as 1000; one with a pattern or enum is left alone), and
    its lists kept to a few entries (64 characters each)."""
    free = {
        name: spec.get("maxLength", 1000)
        for name, spec in item["properties"].items()
        if isinstance(spec, dict)
        and spec.get("type") == "string"
        and "pattern" not in spec
        and "enum" not in spec
    }
    total = sum(free.values()) or 1
    fitted: dict[str, Any] = {
        name: {**item["properties"][name], "maxLength": max(32, min(most, chars * most // total))}
        for name, most in free.items()
    }
    for name, spec in item["properties"].items():  # a list inside it: a few short entries
        if isinstance(spec, dict) and spec.get("type") == "array":
            fitted[name] = {
                **spec,
                "maxItems": max(1, min(spec.get("maxItems", 1000), chars // 64)),
            }
    return {**item, "properties": {**item["properties"], **fitted}}


def _json_instruction(tool: Tool) -> str:
    return (
        f"Answer with one JSON object and nothing else: the input of `{tool.name}` "
        f"({tool.description}), matching this JSON schema: {json.dumps(tool.schema)}"
    )


def _chat_usage(answer: dict[str, Any], model: str) -> Usage:
    """An OpenAI-style usage, priced: prompt tokens served from the cache are cache reads,
    apart from the uncached input tokens, as Anthropic counts them."""
    usage = answer.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return priced(
        str(answer.get("model") or model),
        prompt - cached,
        int(usage.get("completion_tokens") or 0),
        cache_read_input_tokens=cached,
    )
