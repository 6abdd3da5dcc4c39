"""Real receivers for the notification tests: an HTTP server that records webhooks (it can answer, refuse
with a status, or hold the request open until released) and an SMTP server (aiosmtpd) that records
e-mails. Both run in threads of the test process on free ports of 127.0.0.1."""

from __future__ import annotations

import email
import email.message
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from paho.mqtt.enums import CallbackAPIVersion

from devtools.services import MqttBroker
from devtools.services.ports import free_port


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 refuses bursts of concurrent deliveries
    allow_reuse_address = True


@dataclass(frozen=True)
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.time() when the request was read."""


@dataclass
class WebhookReceiver:
    """`status` is what it answers; `hold` makes it keep requests open (recorded) until `release()`."""

    port: int = field(default_factory=free_port)
    status: int = 200
    location: str | None = None
    """Sent as the Location header (with a 3xx `status`: a redirect)."""
    body: bytes = b"ok"
    hooks: list[Hook] = field(default_factory=list)
    hold: bool = False
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(size)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.hooks.append(Hook(self.path, headers, body, time.time()))
                if receiver.hold:
                    receiver._released.wait(60)
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", str(len(receiver.body)))
                    if receiver.location is not None:
                        self.send_header("Location", receiver.location)
                    self.end_headers()
                    self.wfile.write(receiver.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender is gone (killed while we held its request)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the port refuses connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def release(self) -> None:
        self.hold = False
        self._released.set()

    def ids(self) -> list[str]:
        return [h.headers["webhook-id"] for h in self.hooks]


@dataclass
class SmtpSink:
    port: int = field(default_factory=free_port)
    messages: list[email.message.Message] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(email.message_from_bytes(content))
        self.times.append(time.time())
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.release()
        receiver.stop()


@contextmanager
def mqtt_subscriber(broker: MqttBroker, topic: str) -> Iterator[list[bytes]]:
    """The payloads published on `topic` while the block runs (a plain paho client)."""
    got: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: got.append(bytes(message.payload))
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "the test's MQTT subscriber did not subscribe"
        yield got
    finally:
        client.loop_stop()
        client.disconnect()
