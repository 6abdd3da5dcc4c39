"""What the edge reports about itself: heartbeats and the gauges read at each /metrics scrape.

Both read the running edge through `RunningEdge`, which the daemon satisfies and passes in, so this
module depends only on the components it reads, never on the daemon.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from common.messages import CameraState, Heartbeat
from edge.camera.sources import CameraSource
from edge.config.schema import DeviceConfig
from edge.delivery.mqtt import EdgeMqttClient
from edge.delivery.outbox import Outbox
from edge.gallery.cache import Gallery
from edge.ops.metrics import Reading


class Throughput(Protocol):
    """What the reports read of a camera's frame processor (edge.inference.frames.FrameProcessor)."""

    def fps(self) -> float: ...

    def latencies(self) -> list[float]: ...

    def motion_share(self) -> float | None: ...


class RunningEdge(Protocol):
    """What the reports read of the running edge (edge.daemon.EdgeDaemon is one)."""

    @property
    def config(self) -> DeviceConfig: ...

    @property
    def started(self) -> float: ...  # time.monotonic() at start

    @property
    def outbox(self) -> Outbox: ...

    @property
    def client(self) -> EdgeMqttClient: ...

    @property
    def galleries(self) -> Mapping[str, Gallery]: ...

    @property
    def sources(self) -> Mapping[str, CameraSource]: ...

    @property
    def processors(self) -> Mapping[str, Throughput]: ...


def _cpu_percent() -> float:
    """Process CPU time over wall time since start, as a percentage of one core."""
    times = os.times()
    return round(100.0 * (times.user + times.system) / max(time.monotonic() - _START, 1e-6), 1)


_START = time.monotonic()


def heartbeat(daemon: RunningEdge) -> Heartbeat:
    """The heartbeat DESIGN.md lists: fps per camera, latency p50/p95, outbox backlog, drops, CPU."""
    cfg, stats = daemon.config, daemon.outbox.stats()
    cameras: dict[str, CameraState] = {}
    latencies: list[float] = []
    for camera_id, source in list(daemon.sources.items()):
        processor = daemon.processors.get(camera_id)
        st = source.stats
        cameras[camera_id] = CameraState(
            state=str(source.state),
            fps=round(processor.fps(), 2) if processor else 0.0,
            frames=st.frames,
            dropped_frames=st.dropped,
        )
        latencies += processor.latencies() if processor else []
    p50, p95 = (np.percentile(latencies, [50, 95]) * 1000).tolist() if latencies else (0.0, 0.0)
    return Heartbeat(
        site=cfg.site,
        edge=cfg.edge,
        uptime_s=round(time.monotonic() - daemon.started, 1),
        cameras=cameras,
        latency_ms_p50=round(p50, 1),
        latency_ms_p95=round(p95, 1),
        outbox_backlog=stats.backlog,
        outbox_unconfirmed=stats.unconfirmed,
        cpu_percent=_cpu_percent(),
        galleries={gid: g.version for gid, g in daemon.galleries.items()},
    )


def live_readings(daemon: RunningEdge) -> list[Reading]:
    """Gauges owned by other components, read at scrape time."""
    out: list[Reading] = []
    stats = daemon.outbox.stats()
    out += [
        ("facegate_edge_outbox_backlog", "Events held in the outbox", {}, float(stats.backlog)),
        (
            "facegate_edge_outbox_unconfirmed",
            "Events sent, not yet confirmed by central",
            {},
            float(stats.unconfirmed),
        ),
        ("facegate_edge_outbox_bytes", "Payload bytes held in the outbox", {}, float(stats.bytes)),
        ("facegate_edge_outbox_resends", "Events published again (cumulative)", {}, float(stats.resends)),
        (
            "facegate_edge_outbox_dropped",
            "Events dropped because the outbox was full (cumulative)",
            {},
            float(stats.drops),
        ),
        (
            "facegate_edge_mqtt_connected",
            "1 while the broker connection is up",
            {},
            float(daemon.client.connected),
        ),
        (
            "facegate_edge_mqtt_reconnects",
            "Broker reconnections (cumulative)",
            {},
            float(daemon.client.counters.reconnects),
        ),
        (
            "facegate_edge_mqtt_logins_refused",
            "Logins the broker refused (cumulative; retried every 30 s .. 5 min)",
            {},
            float(daemon.client.counters.logins_refused),
        ),
    ]
    for gid, gallery in daemon.galleries.items():
        out.append(
            (
                "facegate_edge_gallery_version",
                "Local gallery version",
                {"gallery": gid},
                float(gallery.version),
            )
        )
        out.append(
            (
                "facegate_edge_gallery_templates",
                "Templates in the local gallery",
                {"gallery": gid},
                float(gallery.template_count),
            )
        )
    for camera_id, source in list(daemon.sources.items()):
        st, labels = source.stats, {"camera": camera_id}
        processor = daemon.processors.get(camera_id)
        out += [
            (
                "facegate_edge_camera_streaming",
                "1 while the camera streams",
                labels,
                float(str(source.state) == "streaming"),
            ),
            (
                "facegate_edge_camera_dropped_frames",
                "Frames replaced before processing (cumulative)",
                labels,
                float(st.dropped),
            ),
            (
                "facegate_edge_camera_reconnects",
                "Camera reconnections (cumulative)",
                labels,
                float(st.reconnects),
            ),
            (
                "facegate_edge_camera_fps",
                "Frames processed per second, last 10 s",
                labels,
                processor.fps() if processor else 0.0,
            ),
        ]
        share = processor.motion_share() if processor else None
        if share is not None:
            out.append(("facegate_edge_motion_share", "Share of recent frames that moved", labels, share))
    return out
