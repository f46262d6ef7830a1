"""A recurring goal's `notify` webhook: a Prefect automation (shown in the Prefect UI) that
follows the `mission.goal-run.ended` events of the schedule's goal runs and calls a Webhook
block with the run's summary and link. The URL passes the SSRF guard unless allowlisted
(MISSION_NOTIFY_ALLOW)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit
from uuid import UUID

from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import PrefectClient
from prefect.events.actions import CallWebhook
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from core.errors import InvalidInput
from core.goal_run import ENDED_EVENT, schedule_resource
from core.web_guard import Allowlist, Blocked, address_refusal, check_url

NAME_PREFIX = "mission-notify-"
MAX_URL_CHARS = 2000


@dataclass(frozen=True)
class Notify:
    """A checked webhook URL; `private`: it reaches an allowlisted private address, so
    Prefect's own check of public URLs must be off for it."""

    url: str
    private: bool


def check_notify(url: str, allow: Allowlist) -> Notify:
    """The webhook URL when the SSRF guard lets it through (or the allowlist covers it);
    else InvalidInput saying why."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"notify: the URL is over {MAX_URL_CHARS} characters")
    try:
        destination = check_url(url, allow)
    except Blocked as exc:
        raise InvalidInput(
            f"notify: {exc.message} (MISSION_NOTIFY_ALLOW lists hosts a webhook may reach)"
        ) from None
    private = any(address_refusal(a) is not None for a in destination.addresses)
    return Notify(url=url.strip(), private=private)


def _payload(page_url: str) -> str:
    """The POST body (a Prefect template over the event): the goal run's id, goal, state,
    message, summary and links."""
    fields = {
        name: f"{{{{ event.payload.{name} | tojson }}}}"
        for name in ("id", "goal", "state", "message", "summary", "prefect_url")
    }
    fields["url"] = f"{{{{ ({json.dumps(page_url + '/tasks/')} ~ event.payload.id) | tojson }}}}"
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def _name(schedule_id: UUID) -> str:
    return f"{NAME_PREFIX}{schedule_id}"


async def add_notify(
    client: PrefectClient, schedule_id: UUID, notify: Notify, page_url: str
) -> None:
    """The schedule's webhook block and the automation that calls it once per ended run."""
    block = Webhook(
        url=notify.url,
        headers={"Content-Type": "application/json"},
        allow_private_urls=notify.private,
    )
    block_id = await block.asave(_name(schedule_id), overwrite=True, client=client)
    await client.create_automation(
        AutomationCore(
            name=_name(schedule_id),
            description=f"POST each ended goal run of recurring goal {schedule_id} to "
            f"{urlsplit(notify.url).hostname} (Mission Control)",
            trigger=EventTrigger(
                expect={ENDED_EVENT},
                match_related={"prefect.resource.id": schedule_resource(schedule_id)},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[CallWebhook(block_document_id=block_id, payload=_payload(page_url))],
        )
    )


async def notify_urls(client: PrefectClient) -> dict[UUID, str]:
    """Each recurring goal's webhook URL, from its automation's block."""
    urls: dict[UUID, str] = {}
    for automation in await client.read_automations():
        if not automation.name.startswith(NAME_PREFIX):
            continue
        try:
            schedule_id = UUID(automation.name.removeprefix(NAME_PREFIX))
            action = automation.actions[0]
            assert isinstance(action, CallWebhook)
            document = await client.read_block_document(
                action.block_document_id, include_secrets=True
            )
        except (ValueError, IndexError, AssertionError, ObjectNotFound):
            continue  # made or changed around us: not ours to show
        url = document.data.get("url")
        if isinstance(url, str):
            urls[schedule_id] = url
    return urls


async def remove_notify(client: PrefectClient, schedule_id: UUID) -> None:
    """The schedule's automation and webhook block, if it has them."""
    for automation in await client.read_automations_by_name(_name(schedule_id)):
        await client.delete_automation(automation.id)
    try:
        document = await client.read_block_document_by_name(_name(schedule_id), "webhook")
    except ObjectNotFound:
        return
    await client.delete_block_document(document.id)
