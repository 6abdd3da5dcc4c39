"""The webhook sender against a real local HTTP server: no redirect followed, a timeout, a capped read
of a large answer, and neither the secret nor the body in the logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest

from central.notify.targets import TargetPolicy
from central.notify.webhook import WebhookSender, WebhookSettings
from central.watch.service import new_secret
from tests.support.notify_receivers import WebhookReceiver, webhook_receiver

BODY = b'{"type":"facegate.watch.match","event":{"person_name":"Ada Lovelace"}}'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


def send(receiver: WebhookReceiver, secret: str, timeout_s: float = 2.0, cap: int = 65536) -> str | None:
    async def go() -> str | None:
        sender = WebhookSender(TargetPolicy(["127.0.0.0/8"]), WebhookSettings(timeout_s, cap))
        try:
            return await sender.send(receiver.url, secret, "delivery-1", BODY)
        finally:
            await sender.close()

    return asyncio.run(go())


def test_webhook_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.status, receiver.location = 302, "http://169.254.169.254/latest/meta-data"
    assert send(receiver, new_secret()) == "HTTP 302: redirect not followed"
    assert len(receiver.hooks) == 1  # nothing else was requested


def test_webhook_slow_receiver_times_out(receiver: WebhookReceiver) -> None:
    receiver.hold = True
    started = time.monotonic()
    reason = send(receiver, new_secret(), timeout_s=0.5)
    assert reason == "timed out after 0.5 s"
    assert time.monotonic() - started < 2.0
    receiver.release()


def test_webhook_large_answer_read_only_up_to_the_cap(receiver: WebhookReceiver) -> None:
    receiver.body = b"x" * (8 * 1024 * 1024)
    started = time.monotonic()
    assert send(receiver, new_secret(), cap=1024) is None  # 2xx: sent, the rest of the answer dropped
    assert time.monotonic() - started < 2.0


def test_webhook_failure_logs_neither_secret_nor_body(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_secret()
    receiver.status = 500
    caplog.set_level(logging.DEBUG)
    assert send(receiver, secret) == "HTTP 500"
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert secret not in logged and secret.removeprefix("whsec_") not in logged
    assert "Ada Lovelace" not in logged
