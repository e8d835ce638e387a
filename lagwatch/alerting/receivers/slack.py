"""Slack: Block Kit messages through the Web API (bot token) or an incoming webhook.

With a bot token a trigger posts a message and keeps its channel and ``ts``; a repeat or
an escalation replies in its thread (broadcast to the channel); a resolve rewrites the
original message (``chat.update``) and replies in its thread. An incoming webhook can only
post, so each notification is a new message there.

slack-sdk's retry handlers wait out 429s (Retry-After) and retry 500 and 503 within one
attempt; what still fails is handed back to the outbox. ``ok: false`` errors such as
``channel_not_found`` are final.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from lagwatch.alerting.config import SlackConfig
from lagwatch.alerting.message import Message
from lagwatch.alerting.retry import DeliveryError, http_error

_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
          "resolved": ":large_green_circle:"}
_TEXT_LIMIT = 2900  # a section's text may hold 3,000 characters


def _handlers() -> list[Any]:
    return [RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2)]


class SlackReceiver:
    """One Slack channel."""

    def __init__(self, name: str, config: SlackConfig, timeout_s: float = 10.0) -> None:
        self.name = name
        self.channel = config.channel or "(webhook)"
        token, hook = config.bot_token(), config.hook_url()
        self._web = (WebClient(token=token, base_url=config.base_url, timeout=int(timeout_s),
                               retry_handlers=_handlers()) if token else None)
        self._hook = (WebhookClient(hook, timeout=int(timeout_s), retry_handlers=_handlers())
                      if hook else None)

    def deliver(self, m: Message, ref: dict[str, Any] | None,
                _key: str = "") -> dict[str, Any] | None:
        """Send one message; return what a later resolve needs (channel and ts)."""
        blocks, text = blocks_for(m), m.headline()
        if self._web is None:
            self._post_hook(text, blocks)
            return None
        if ref is None or m.action == "trigger":
            reply = self._call("chat_postMessage", channel=self.channel, text=text,
                               blocks=blocks)
            return {"channel": reply["channel"], "ts": reply["ts"]}
        if m.resolved:
            self._call("chat_update", channel=ref["channel"], ts=ref["ts"], text=text,
                       blocks=blocks)
        self._call("chat_postMessage", channel=ref["channel"], thread_ts=ref["ts"], text=text,
                   blocks=blocks, reply_broadcast=not m.resolved)
        return ref

    def _call(self, method: str, **kwargs: Any) -> Any:
        assert self._web is not None
        try:
            return getattr(self._web, method)(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            status = response.status_code
            if status != 200:
                after = response.headers.get("Retry-After") or response.headers.get(
                    "retry-after")
                raise http_error(status, f"Slack {method} answered HTTP {status}",
                                 after[0] if isinstance(after, list) else after) from None
            error = response.get("error", "unknown_error")
            raise DeliveryError(error, f"Slack {method} to channel {self.channel} failed: "
                                f"{error}", retryable=False) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryError("network", f"Slack {method}: {type(exc).__name__}: {exc}",
                                retryable=True) from None

    def _post_hook(self, text: str, blocks: list[dict[str, Any]]) -> None:
        assert self._hook is not None
        try:
            response = self._hook.send(text=text, blocks=blocks)
        except (SlackClientError, OSError) as exc:
            raise DeliveryError("network", f"Slack webhook: {type(exc).__name__}: {exc}",
                                retryable=True) from None
        if response.status_code != 200:
            raise http_error(response.status_code, f"Slack webhook answered HTTP "
                             f"{response.status_code}: {response.body[:200]}",
                             response.headers.get("Retry-After"))


def blocks_for(m: Message) -> list[dict[str, Any]]:
    """The Block Kit layout: headline, reasons, key numbers, links."""
    emoji = _EMOJI["resolved" if m.resolved else m.severity]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{emoji} *{_escape(m.headline())}*"}}]
    if m.lines and not m.resolved:
        text = "\n".join(f"• {_escape(line)}" for line in m.lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": text[:_TEXT_LIMIT]}})
    if m.facts and not m.resolved:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_escape(label)}*\n{_escape(value)}"}
            for label, value in m.facts[:10]]})
    context = [f"<{url}|{label}>" for label, url in m.links]
    context.append(f"incident `{_escape(m.incident)}`")
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return blocks


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
