"""Poison messages through a real broker into a real central (issue 13 findings 1, 2, 5 and 9): one
edge's bad events never hold up another edge's good ones, they are dead-lettered, counted and rejected
back to their edge (whose outbox deletes them), and a stall shows on /ready/ingest, never on /ready.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import psycopg

from central.settings import CentralSettings
from common.messages import encode
from common.topics import edge_topic
from devtools.services import MqttBroker, MqttTestClient
from tests.support.central_app import Central
from tests.support.ingest_rig import (
    EDGE,
    SITE,
    EdgeRig,
    central_mqtt,
    make_event,
    mqtt_settings,
    register_edge,
    stored_ids,
    wait_for,
)

GOOD_EDGE = "edge2"


def poison_payloads() -> dict[str, bytes]:
    """Event id -> payload: an over-long field, an ancient time, deep nesting, garbage after an id."""
    long_camera = make_event(SITE, EDGE, camera="c" * 4000)
    ancient = msgspec.json.decode(encode(make_event(SITE, EDGE, seq=1)))
    ancient["ts"] = "0001-01-01T00:30:00+01:00"
    deep = make_event(SITE, EDGE, seq=2)
    garbage_id = make_event(SITE, EDGE, seq=3).id
    return {
        long_camera.id: encode(long_camera),
        ancient["id"]: msgspec.json.encode(ancient),
        deep.id: encode(deep)[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        garbage_id: b'{"id": "' + garbage_id.encode() + b'", "schema": "facegate.event/1", "site": [[{',
    }


class ReadyWatch:
    """Polls /ready in a thread while the test runs; remembers every status that was not 200."""

    def __init__(self, central: Central) -> None:
        self.central = central
        self.bad: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            status = self.central.client.get("/ready").status_code
            if status != 200:
                self.bad.append(status)


def test_ingest_poison_edge_rejected_while_other_edge_stored_and_ready_throughout(
    settings: CentralSettings, broker: MqttBroker, tmp_path: Path
) -> None:
    """Guards issue 13 findings 1, 2 and 9 (the must-show poison test): the bad events used to be
    retried forever or leave their batch unacknowledged, so the good edge's events were never stored;
    and with no receipt for a dead letter the poison edge resent its events forever."""
    register_edge(settings.database_url, SITE, GOOD_EDGE)
    poison = poison_payloads()
    with (
        central_mqtt(settings) as central,
        ReadyWatch(central) as ready,
        EdgeRig(broker, SITE, EDGE, tmp_path) as bad,
        EdgeRig(broker, SITE, GOOD_EDGE, tmp_path) as good,
        MqttTestClient(broker) as raw,
    ):
        for event_id, payload in poison.items():
            bad.outbox.put(event_id, "cam1", bad.topic, payload)
        bad.publisher.notify()
        raw.publish(edge_topic(SITE, EDGE, "events"), b"\xff\xfe no id, not JSON")
        started = time.monotonic()
        ids = good.emit(200)
        wait_for(lambda: sorted(stored_ids(settings.database_url)) == sorted(ids), 10, "good events stored")
        stored_s = time.monotonic() - started
        wait_for(lambda: bad.backlog() == 0, 10, "the poison edge's outbox emptied by rejected receipts")
        wait_for(lambda: good.backlog() == 0, 10, "the good edge's outbox confirmed")
        metrics = central.client.get("/metrics").text
        ingest = central.client.get("/ready/ingest")
    assert stored_s < 5, f"good events took {stored_s:.1f} s"
    assert bad.publisher.rejected == {"malformed": 4}
    assert 'facegate_dead_letters_total{reason="malformed"} 5.0' in metrics
    assert ready.bad == []
    assert ingest.status_code == 200 and ingest.json()["status"] == "ok"


def test_ingest_statement_refused_for_one_event_dead_letters_it_and_stores_the_batch(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    """Guards issue 13 findings 1 and 2: a batch was split only on DataError and IntegrityError, so a
    ProgramLimitExceeded (here raised by a trigger for one camera) retried the batch forever."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.camera = 'poison' THEN RAISE EXCEPTION 'index row too large' USING ERRCODE = '54000'; "
            "END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER zz_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    events = [make_event(SITE, EDGE, seq=i, camera="poison" if i == 7 else "cam1") for i in range(20)]
    slow = mqtt_settings(settings, broker, ingest_flush_s=0.5)
    with central_mqtt(slow), MqttTestClient(broker) as client:
        client.subscribe(edge_topic(SITE, EDGE, "receipts"))
        for event in events:
            client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        good = sorted(e.id for i, e in enumerate(events) if i != 7)
        wait_for(lambda: sorted(stored_ids(settings.database_url)) == good, 10, "the other 19 events stored")
        rejected: list[dict[str, str]] = []
        deadline = time.monotonic() + 5
        while not rejected and time.monotonic() < deadline:
            rejected = msgspec.json.decode(client.next_message(5).payload).get("rejected", [])
    assert rejected == [{"id": events[7].id, "reason": "malformed"}]
    with psycopg.connect(settings.database_url) as conn:
        reasons = conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert reasons == [("malformed",)]


def test_ingest_stall_shown_on_ready_ingest_and_metric_not_on_ready(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    """Guards issue 13 finding 1's last point: a stuck ingest left /ready answering ready with nothing
    to show it. A dependency failure (a trigger raising an I/O error, SQLSTATE 58030) is retried, not
    dead-lettered; while it lasts /ready/ingest answers 503 and /ready stays 200."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'disk gone' USING ERRCODE = '58030'; END $$"
        )
        conn.execute("CREATE TRIGGER zz_stall BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION stall()")
    event = make_event(SITE, EDGE)
    with central_mqtt(mqtt_settings(settings, broker, ingest_stall_s=1.0)) as central:
        assert central.client.get("/ready/ingest").json()["status"] == "ok"
        with MqttTestClient(broker) as client:
            client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        wait_for(lambda: central.client.get("/ready/ingest").status_code == 503, 10, "ingest shown stalled")
        assert central.client.get("/ready").status_code == 200
        metrics = central.client.get("/metrics").text
        assert "facegate_ingest_waiting_messages 1.0" in metrics
        with psycopg.connect(settings.database_url) as conn:
            conn.execute("DROP TRIGGER zz_stall ON events")
        wait_for(lambda: stored_ids(settings.database_url) == [event.id], 10, "the event stored after all")
        wait_for(lambda: central.client.get("/ready/ingest").status_code == 200, 5, "ingest recovered")
