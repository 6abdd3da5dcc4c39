"""Fleet gauges on central's /metrics, read from the edges table by the background refresher, and
the check that every metric the alert rules and the Grafana dashboard name is exported."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from central.settings import CentralSettings
from tests.support.central_app import Central, start_central
from tests.system.deploy.test_alert_rules import (
    dashboard_expressions,
    exported_names,
    promql_names,
    rule_expressions,
)

PROMETHEUS_MADE = {"up"}
"""Series Prometheus makes itself (scrape health), not exported by anyone."""

STATS = {
    "uptime_s": 120.0,
    "cameras": {"door": {"state": "streaming", "fps": 12.5}, "hall": {"state": "streaming", "fps": 7.5}},
    "outbox_backlog": 42,
    "outbox_unconfirmed": 7,
    "galleries": {"staff": 3},
}


@pytest.fixture
def fleet(central_settings: CentralSettings) -> Iterator[Central]:
    """Central refreshing its fleet gauges every 0.2 s, with site s1: one online edge 2 versions behind
    gallery `staff`, one whose last heartbeat is 10 minutes old, one never seen."""
    for central in start_central(replace(central_settings, fleet_refresh_s=0.2)):
        with central.db() as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1')")
            conn.execute(
                "INSERT INTO galleries (id, name, model_id, current_version)"
                " VALUES ('staff', 'Staff', 'm', 5)"
            )
            conn.execute("INSERT INTO gallery_sites (gallery_id, site_id) VALUES ('staff', 's1')")
            conn.execute(
                "INSERT INTO edges (site_id, id, status, last_seen, gallery_versions, stats, stats_at)"
                " VALUES ('s1', 'live', 'online', now(), '{\"staff\": 3}', %s, now()),"
                " ('s1', 'stale', 'online', now() - interval '10 minutes', '{\"staff\": 5}', %s, now()),"
                " ('s1', 'new', 'offline', NULL, '{}', '{}', NULL)",
                (json.dumps(STATS), json.dumps(STATS)),
            )
        yield central


def scrape(central: Central) -> str:
    response = central.client.get("/metrics")
    assert response.status_code == 200
    return response.text


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def refreshed(central: Central, timeout_s: float = 10.0) -> str:
    """/metrics once the refresher has seen the fixture's three edges."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = scrape(central)
        online = value(text, "facegate_edges", state="online") or 0
        offline = value(text, "facegate_edges", state="offline") or 0
        if online + offline == 3 or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_fleet_gauges_online_edge_shows_its_heartbeat_figures(fleet: Central) -> None:
    text = refreshed(fleet)
    edge = {"site": "s1", "edge": "live"}
    assert value(text, "facegate_edge_up", **edge) == 1
    assert value(text, "facegate_edge_outbox_backlog", **edge) == 42
    assert value(text, "facegate_edge_unconfirmed_events", **edge) == 7
    assert value(text, "facegate_edge_fps", **edge) == 20.0
    assert value(text, "facegate_edge_gallery_lag", **edge) == 2
    assert 0 <= (value(text, "facegate_edge_last_seen_seconds", **edge) or -1) < 30


def test_fleet_gauges_edge_not_seen_within_the_window_counts_offline(fleet: Central) -> None:
    text = refreshed(fleet)
    assert value(text, "facegate_edges", state="online") == 1
    assert value(text, "facegate_edges", state="offline") == 2
    assert value(text, "facegate_edge_up", site="s1", edge="stale") == 0
    assert value(text, "facegate_edge_fps", site="s1", edge="stale") == 0
    assert (value(text, "facegate_edge_last_seen_seconds", site="s1", edge="stale") or 0) >= 590
    assert value(text, "facegate_edge_gallery_lag", site="s1", edge="stale") == 0


def test_fleet_gauges_never_seen_edge_has_no_last_seen_and_full_lag(fleet: Central) -> None:
    text = refreshed(fleet)
    assert value(text, "facegate_edge_up", site="s1", edge="new") == 0
    assert value(text, "facegate_edge_last_seen_seconds", site="s1", edge="new") is None
    assert value(text, "facegate_edge_outbox_backlog", site="s1", edge="new") is None
    assert value(text, "facegate_edge_gallery_lag", site="s1", edge="new") == 5


def test_fleet_gauges_follow_a_status_change(fleet: Central) -> None:
    refreshed(fleet)
    with fleet.db() as conn:
        conn.execute("UPDATE edges SET status = 'offline' WHERE id = 'live'")
    deadline = time.monotonic() + 10
    while value(scrape(fleet), "facegate_edge_up", site="s1", edge="live") != 0:
        assert time.monotonic() < deadline, "facegate_edge_up did not drop after the edge went offline"
        time.sleep(0.1)


def test_fleet_gauges_report_database_and_redis_up(fleet: Central) -> None:
    text = refreshed(fleet)
    assert value(text, "facegate_dependency_up", dependency="database") == 1
    assert value(text, "facegate_dependency_up", dependency="redis") == 1
    assert abs((value(text, "facegate_fleet_refresh_timestamp_seconds") or 0) - time.time()) < 30


def test_monitoring_every_metric_named_by_rules_and_dashboard_is_exported(fleet: Central) -> None:
    fleet.client.get("/api/v1/people", headers=fleet.admin)  # so request counters have samples
    exported = exported_names(refreshed(fleet))
    named = set().union(*(promql_names(expr) for expr in rule_expressions() + dashboard_expressions()))
    assert named - exported - PROMETHEUS_MADE == set()


def test_monitoring_name_check_catches_a_metric_nobody_exports(fleet: Central) -> None:
    exported = exported_names(refreshed(fleet))
    assert promql_names("max by (site) (facegate_edge_uptime_seconds)") - exported == {
        "facegate_edge_uptime_seconds"
    }


def test_monitoring_settings_read_from_the_environment(central_settings: CentralSettings) -> None:
    env = {
        "FACEGATE_DATABASE_URL": central_settings.database_url,
        "FACEGATE_SECRET_KEY": "x" * 32,
        "FACEGATE_STORAGE_DIR": "/tmp/facegate-test-storage",
        "FACEGATE_FLEET_REFRESH_S": "5",
        "FACEGATE_EDGE_OFFLINE_AFTER_S": "45",
        "FACEGATE_WS_QUEUE_SIZE": "10",
        "FACEGATE_WS_PING_S": "3",
        "FACEGATE_LIVE_CHANNEL": "facegate:events:blue",
    }
    settings = CentralSettings.from_env(env)
    assert (settings.fleet_refresh_s, settings.edge_offline_after_s) == (5.0, 45.0)
    assert (settings.ws_queue_size, settings.ws_ping_s, settings.live_channel) == (
        10,
        3.0,
        "facegate:events:blue",
    )
