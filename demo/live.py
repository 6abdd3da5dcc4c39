"""The live event stream: central's `/ws/events` read on a thread, each event printed as it arrives
(time, who, site, camera, score) and tallied for the summary."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


@dataclass
class Tally:
    """What the stream delivered during this run."""

    per_site: Counter[str] = field(default_factory=Counter)
    unknown_per_site: Counter[str] = field(default_factory=Counter)
    people_per_site: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    best_score: dict[tuple[str, str], float] = field(default_factory=dict)
    earliest: datetime | None = None  # the capture time of the earliest event shown
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, site: str, who: str | None, score: float | None, ts: datetime | None = None) -> None:
        with self.lock:
            if ts is not None and (self.earliest is None or ts < self.earliest):
                self.earliest = ts
            self.per_site[site] += 1
            if who is None:
                self.unknown_per_site[site] += 1
                return
            self.people_per_site[site].add(who)
            key = (site, who)
            if score is not None and score > self.best_score.get(key, -1.0):
                self.best_score[key] = score


def event_time(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def describe(event: dict[str, Any], names: Callable[[str], str]) -> tuple[str, str | None, float | None]:
    """One printed line for `event`, the person's name (None: unknown) and the score."""
    person = event.get("person_id")
    who = names(str(person)) if person else None
    score = event.get("score")
    ts = datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    shown = who if who is not None else "unknown"
    score_text = f"score {score:.2f}" if isinstance(score, int | float) else "score  -  "
    quality = f"(quality {event.get('quality', 0):.2f})"
    line = f"  {ts}  {event['site']:<6} {event['camera']:<9} {shown:<16} {score_text}  {quality}"
    return line, who, float(score) if isinstance(score, int | float) else None


class LiveStream:
    """Reads `ws://central/ws/events` until `close()`; prints and tallies every event."""

    def __init__(self, url: str, key: str, names: Callable[[str], str], out: Callable[[str], None]) -> None:
        self.url, self.key, self.names, self.out = url, key, names, out
        self.tally = Tally()
        self.error: str | None = None
        self._socket: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="demo-live", daemon=True)
        self._connected = threading.Event()

    def start(self, timeout: float = 20) -> None:
        self._thread.start()
        if not self._connected.wait(timeout) and self.error is None:
            self.error = "no connection to /ws/events"
        if self.error is not None:
            raise RuntimeError(self.error)

    def _run(self) -> None:
        try:
            with connect(
                self.url, additional_headers={"Authorization": f"Bearer {self.key}"}, open_timeout=15
            ) as ws:
                self._socket = ws
                self._connected.set()
                for message in ws:
                    frame = json.loads(message)
                    if frame.get("type") != "event":
                        continue
                    line, who, score = describe(frame["event"], self.names)
                    self.tally.add(str(frame["event"]["site"]), who, score, event_time(frame["event"]))
                    self.out(line)
        except ConnectionClosed:
            return
        except OSError as err:
            self.error = f"/ws/events: {type(err).__name__}: {err}"
            self._connected.set()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._thread.join(timeout=10)
