"""Central's MQTT login refused, then accepted once the broker's password file has the user and is
reloaded (SIGHUP): no restart of central needed (issue 13 finding 8)."""

from __future__ import annotations

from pathlib import Path

from central.settings import CentralSettings
from tests.support.ingest_rig import central_mqtt, mqtt_settings, wait_for
from tests.support.secured_broker import secured_broker


def test_central_refused_login_retried_and_ready_recovers_after_broker_reload(
    central_settings: CentralSettings, tmp_path: Path
) -> None:
    """Guards issue 13 finding 8: a refused login left central at /ready 503 until restarted by hand."""
    with secured_broker(tmp_path, {"someone-else": "x"}) as broker:
        settings = mqtt_settings(
            central_settings,
            broker.endpoint,
            mqtt_username="central-1",
            mqtt_password="right",
            mqtt_refused_backoff_min_s=0.2,
            mqtt_refused_backoff_max_s=0.2,
        )
        with central_mqtt(settings, connected=False) as central:
            wait_for(lambda: central.client.get("/ready").status_code == 503, 10, "/ready 503")
            wait_for(
                lambda: "facegate_mqtt_logins_refused 2.0" in central.client.get("/metrics").text,
                10,
                "the refused login retried and counted",
            )
            body = central.client.get("/ready").json()
            assert body["checks"]["broker"] == "unavailable"  # the detail (user, broker) goes to the log only
            broker.set_user("central-1", "right")
            broker.reload()
            wait_for(lambda: central.client.get("/ready").status_code == 200, 10, "/ready 200 again")
