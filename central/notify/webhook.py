"""Sending one webhook: SSRF-checked target, signed body, no redirects, timeouts, a capped response read.

The secret and the body are never logged; a failure's reason names the status or the error only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from central.notify.signing import sign
from central.notify.targets import TargetPolicy, TargetRefused

USER_AGENT = "facegate-webhooks/1"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    timeout_s: float
    max_response_bytes: int


class WebhookSender:
    """One HTTP client for all webhooks of a replica (connections reused per target address)."""

    def __init__(self, policy: TargetPolicy, settings: WebhookSettings) -> None:
        self.policy = policy
        self.settings = settings
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.timeout_s),
            trust_env=False,  # no proxy from the environment: the checked address is the one reached
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, secret: str, delivery_id: str, body: bytes) -> str | None:
        """POST `body`; None when the receiver answered 2xx, else the reason it failed."""
        try:
            target = await self.policy.resolve(url)
        except TargetRefused as err:
            return str(err)
        timestamp = int(time.time())
        host = f"[{target.address}]" if ":" in target.address else target.address
        default_port = 443 if target.scheme == "https" else 80
        headers = {
            "Host": target.host if target.port == default_port else f"{target.host}:{target.port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, delivery_id, timestamp, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self.client.build_request(
            "POST",
            f"{target.scheme}://{host}:{target.port}{target.path}",
            content=body,
            headers=headers,
            extensions=extensions,
        )
        try:
            response = await self.client.send(request, stream=True)
            try:
                await self._drain(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return f"timed out after {self.settings.timeout_s:g} s"
        except httpx.HTTPError as err:
            return f"{type(err).__name__}: {str(err)[:200]}"
        if response.is_redirect:
            return f"HTTP {response.status_code}: redirect not followed"
        if not response.is_success:
            return f"HTTP {response.status_code}"
        return None

    async def _drain(self, response: httpx.Response) -> None:
        """Read at most the cap of the response (the rest is dropped with the connection)."""
        left = self.settings.max_response_bytes
        async for chunk in response.aiter_raw():
            left -= len(chunk)
            if left <= 0:
                break
