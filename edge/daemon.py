"""`facegate edge run --config FILE`: the edge daemon's lifecycle, scheduling and commands.

Start order: models, galleries, outbox, MQTT client, publisher, gallery sync, cameras, heartbeats,
health endpoint. The scheduler takes the latest frame of every camera that has one (readers keep only
the latest, so a slow pipeline never works on stale frames) and runs them through the pipeline
together (one detector run, one embedder run: `batching` in the device file), then each through its
camera's matcher and tracker; events are written to the outbox before anything is published.
SIGTERM/SIGINT: stop the readers, finish the frame in flight, stop the publisher (it records what
the broker acknowledged), close the outbox, publish offline status, disconnect.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from common.errors import ConfigError, FacegateError
from common.log import setup_logging
from common.messages import Command, MessageError, decode
from common.mqtt.incoming import Handler, Incoming
from common.pipeline.pipeline import DEFAULT_THRESHOLDS, FacePipeline
from common.topics import edge_topic
from edge import assembly
from edge.camera.sources import CameraSource, SourceState, StateChange
from edge.config import central_crops
from edge.config.loader import load_config
from edge.config.schema import Camera, DeviceConfig
from edge.delivery.mqtt import EdgeMqttClient, Versions
from edge.delivery.outbox import Outbox
from edge.delivery.publisher import Heartbeats, Publisher
from edge.delivery.sequence import Sequences
from edge.gallery.cache import Gallery
from edge.gallery.matcher import Matcher
from edge.gallery.snapshots import SnapshotFetcher
from edge.gallery.sync import GallerySync
from edge.inference.frames import FrameProcessor, GalleryMatcher
from edge.inference.scheduler import IDLE_S, Scheduler, worker_count
from edge.inference.tracker import Tracker
from edge.ops.health import HealthServer
from edge.ops.metrics import EdgeMetrics
from edge.ops.stats import heartbeat, live_readings

log = logging.getLogger(__name__)
SOFTWARE = "facegate-edge/0.1.0"


class EdgeDaemon:
    """The whole edge box in one object; `run()` blocks until stop() or a signal."""

    def __init__(self, config_path: Path, config: DeviceConfig) -> None:
        self._central_crops_path = assembly.state_path(config, "central-crops")
        self.config_path = config_path
        self.config = central_crops.apply(config, central_crops.read(self._central_crops_path))
        self.metrics = EdgeMetrics()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._signals: deque[int] = deque()  # received signals, acted on by the loop
        self._lock = threading.RLock()  # guards cameras and matchers against a config reload
        self.sources: dict[str, CameraSource] = {}  # the stream each camera is detected on
        self.crop_sources: dict[str, CameraSource] = {}  # the main stream of cameras with a detect_source
        self.processors: dict[str, FrameProcessor] = {}

    # --- start and stop -------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self.pipeline = FacePipeline.load(cfg.pipeline_settings())
        assert self.pipeline.embedder is not None
        model_id = self.pipeline.embedder.model_id
        self.pipeline_family = self.pipeline.embedder.model.manifest.family
        paths = [assembly.gallery_path(cfg.gallery, g) for g in cfg.gallery.ids] + [Path(cfg.outbox.path)]
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.galleries = {
            gid: Gallery.open(
                assembly.gallery_path(cfg.gallery, gid), gid, model_id, assembly.index_settings(cfg.gallery)
            )
            for gid in cfg.gallery.ids
        }
        self.outbox = Outbox(cfg.outbox.path, assembly.outbox_settings(cfg.outbox)).open()
        self.sequences = Sequences(assembly.state_path(cfg, "sequences.db"))
        self.client = EdgeMqttClient(
            assembly.mqtt_settings(cfg), site=cfg.site, edge=cfg.edge, versions=self._versions
        )
        self.publisher = Publisher(
            self.outbox,
            self.client,
            assembly.publisher_settings(cfg.outbox),
            on_rejected=lambda reason, n: self.metrics.events_rejected.labels(reason=reason).inc(n),
        )
        self.sync = GallerySync(
            dict(self.galleries),
            SnapshotFetcher(cfg.central.url, cfg.central.secret),
            on_problem=lambda g, reason: self.metrics.gallery_errors.labels(gallery=g, reason=reason).inc(),
            on_snapshot=lambda g: self.metrics.snapshots.labels(gallery=g).inc(),
        )
        for topic, handler in self.sync.subscriptions():
            self.client.subscribe(topic, payload_only(handler))
        self.client.subscribe(edge_topic(cfg.site, cfg.edge, "commands"), self._on_command)
        self.heartbeats = Heartbeats(self.client, cfg.heartbeat_s, lambda: heartbeat(self))
        self.metrics.live(lambda: live_readings(self))
        self.health = HealthServer(cfg.health.host, cfg.health.port, self.metrics.registry, self.readiness)
        self.health.alive = lambda: not self._stop.is_set()
        for camera in cfg.cameras:
            self._add_camera(camera)
        self.client.start()
        self.publisher.start()
        self.sync.start()
        self.heartbeats.start()
        self.health.start()
        log.info(
            "edge_started",
            extra={
                "site": cfg.site,
                "edge": cfg.edge,
                "cameras": len(self.sources),
                "galleries": list(self.galleries),
                "model": model_id,
            },
        )

    def stop(self) -> None:
        self._stop.set()

    def _shutdown(self) -> None:
        log.info("edge_stopping")
        with self._lock:
            for source in [*self.sources.values(), *self.crop_sources.values()]:
                source.stop()
        self.heartbeats.stop()
        self.sync.stop()
        self.publisher.stop()
        self.client.stop()
        self.health.stop()
        self.outbox.close()
        self.sequences.close()
        for gallery in self.galleries.values():
            gallery.close()
        log.info("edge_stopped")

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop the daemon, SIGHUP reloads the device file.

        The handlers only record the signal: a handler runs in the main thread between two bytecodes,
        possibly while that thread holds a lock (inside Event.wait, or a logging write), so taking any
        lock there (Event.set, logging, starting a thread) can deadlock. The loop acts on it."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signals.append(signum)  # deque.append takes no lock

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, handle)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            log.info("edge_signal", extra={"signal": signal.Signals(signum).name})
            if signum == signal.SIGHUP:
                threading.Thread(target=self.reload, name="reload", daemon=True).start()
            else:
                self.stop()

    # --- the scheduler ----------------------------------------------------------------------------

    def run(self) -> None:
        """Take the cameras' latest frames, batch by batch, until stopped, then shut down cleanly."""
        workers = worker_count(self.config.batching.workers, self.pipeline.on_gpu)
        scheduler = Scheduler(
            self._cameras,
            self._locked_matchers,
            self.config.batching,
            workers=workers,
            on_batch=self.publisher.notify,
            on_error=self._frame_failed,
        )
        log.info("inference_workers", extra={"workers": workers})
        try:
            scheduler.start_helpers(self._stop)
            while not self._stop.is_set():
                self._handle_signals()
                if not scheduler.run_once():
                    time.sleep(IDLE_S)  # not Event.wait: see install_signals
        finally:
            self._stop.set()
            scheduler.join()
            self._shutdown()
        if scheduler.crashed is not None:
            raise scheduler.crashed

    def _cameras(self) -> list[tuple[FrameProcessor, CameraSource]]:
        with self._lock:
            return [(p, s) for camera_id, p in self.processors.items() if (s := self.sources.get(camera_id))]

    def _locked_matchers(self) -> list[GalleryMatcher]:
        with self._lock:  # not halfway through a reload's swap of galleries and thresholds
            return self.matchers()

    def _frame_failed(self, camera_id: str, err: FacegateError) -> None:
        log.error("frame_failed", extra={"camera": camera_id, "error": str(err)})
        self.metrics.camera_errors.labels(camera=camera_id).inc()

    def matchers(self) -> list[GalleryMatcher]:
        """Matchers over every followed gallery, with the thresholds of the current device file."""
        t = self.config.thresholds
        threshold = t.match if t.match is not None else DEFAULT_THRESHOLDS[self.pipeline_family]
        return [
            GalleryMatcher(gid, Matcher(g, threshold, t.margin, negative_margin=t.negative_margin), g.version)
            for gid, g in self.galleries.items()
        ]

    # --- cameras and configuration ----------------------------------------------------------------

    def _add_camera(self, camera: Camera) -> None:
        """Start a camera's reader; with a `detect_source`, that stream is detected on and `source` is
        read beside it for the crops (docs/edge.md, "Detection and crop streams")."""
        if not camera.enabled:
            return
        settings = assembly.source_settings(camera)
        if camera.detect_source is None:
            source = CameraSource(
                camera.id, camera.source, assembly.source_kind(camera), settings, on_state=self._on_state
            )
        else:
            source = CameraSource(
                camera.id,
                camera.detect_source,
                assembly.detect_source_kind(camera),
                settings,
                on_state=self._on_state,
            )
            crops = CameraSource(
                camera.id,
                camera.source,
                assembly.source_kind(camera),
                assembly.crop_source_settings(camera),
                on_state=self._on_state,
            )
            self.crop_sources[camera.id] = crops
            crops.start()
        self.processors[camera.id] = self._processor(camera)
        self.sources[camera.id] = source
        source.start()

    def _processor(self, camera: Camera) -> FrameProcessor:
        crops = self.crop_sources.get(camera.id)
        return FrameProcessor(
            camera,
            site=self.config.site,
            edge=self.config.edge,
            pipeline=self.pipeline,
            tracker=Tracker(camera.id, assembly.tracker_settings(self.config)),
            outbox=self.outbox,
            sequences=self.sequences,
            metrics=self.metrics,
            crops=crops.nearest if crops is not None else None,
        )

    def _remove_camera(self, camera_id: str) -> None:
        source = self.sources.pop(camera_id, None)
        crops = self.crop_sources.pop(camera_id, None)
        self.processors.pop(camera_id, None)
        for running in (source, crops):
            if running is not None:
                running.stop()

    def _on_state(self, change: StateChange) -> None:
        level = (
            logging.WARNING if change.new in (SourceState.BACKING_OFF, SourceState.FAILED) else logging.INFO
        )
        log.log(
            level,
            "camera_state",
            extra={
                "camera": change.camera_id,
                "from": str(change.old),
                "to": str(change.new),
                "reason": change.reason,
            },
        )
        if change.new in (SourceState.BACKING_OFF, SourceState.FAILED):
            self.metrics.camera_errors.labels(camera=change.camera_id).inc()

    def reload(self) -> None:
        """Re-read the device file: cameras and thresholds change; the outbox, broker session and
        galleries stay. A file with an error changes nothing."""
        try:
            new = central_crops.apply(
                load_config(self.config_path), central_crops.read(self._central_crops_path)
            )
        except ConfigError as err:
            self.metrics.config_errors.inc()
            log.error("config_reload_refused", extra={"error": str(err)})
            return
        with self._lock:
            old = {c.id: c for c in self.config.cameras}
            wanted = {c.id: c for c in new.cameras if c.enabled}
            for camera_id in set(self.sources) - set(wanted):
                self._remove_camera(camera_id)
            tracking_changed = (new.tracker, new.thresholds, new.crops) != (
                self.config.tracker,
                self.config.thresholds,
                self.config.crops,
            )
            self.config = new
            for camera_id, camera in wanted.items():
                if old.get(camera_id) != camera or camera_id not in self.sources:
                    self._remove_camera(camera_id)
                    self._add_camera(camera)
                elif tracking_changed:  # same camera, new tracker settings: keep the reader running
                    self.processors[camera_id] = self._processor(camera)
        log.info("config_reloaded", extra={"cameras": sorted(wanted)})

    # --- commands, status, readiness --------------------------------------------------------------

    def _on_command(self, message: Incoming) -> None:
        try:
            command = decode(message.payload, Command)
        except MessageError as err:
            self.metrics.bad_messages.labels(topic_kind="commands", reason="malformed").inc()
            log.warning("command_malformed", extra={"error": str(err)[:200]})
            return
        log.info("command", extra={"action": command.action, "gallery": command.gallery})
        if command.action == "resync_gallery":
            for gid in [command.gallery] if command.gallery else list(self.galleries):
                self.sync.resync(gid)
        elif command.action == "reload_config":
            if command.crop_policy is not None:
                central_crops.write(self._central_crops_path, command.crop_policy)
                log.info("central_crop_policy", extra={"crop_policy": command.crop_policy})
            threading.Thread(target=self.reload, name="reload", daemon=True).start()
        elif command.action == "erase_person" and command.person_id:
            removed = sum(g.erase_person(command.person_id) for g in self.galleries.values())
            log.info("person_erased", extra={"person": command.person_id, "templates": removed})

    def _versions(self) -> Versions:
        pipeline = getattr(self, "pipeline", None)
        return Versions(
            software=SOFTWARE,
            detector=pipeline.detector.model.manifest.id if pipeline else "",
            recognizer=pipeline.embedder.model_id if pipeline and pipeline.embedder else "",
            galleries={gid: g.version for gid, g in getattr(self, "galleries", {}).items()},
        )

    def readiness(self) -> dict[str, bool]:
        with self._lock:
            sources = [*self.sources.values(), *self.crop_sources.values()]
        return {
            "models": getattr(self, "pipeline", None) is not None,
            "cameras": all(s.state == SourceState.STREAMING for s in sources),
            "broker": self.client.connected,
        }


def payload_only(handler: Callable[[bytes], None]) -> Handler:
    """Adapt a payload handler to the MQTT client's message handlers."""

    def handle(message: Incoming) -> None:
        handler(message.payload)

    return handle


def run_daemon(config_path: Path) -> int:
    """Load the device file, run until a signal, return the exit status."""
    config = load_config(config_path)
    setup_logging(config.log_level)
    daemon = EdgeDaemon(config_path, config)
    daemon.install_signals()
    daemon.start()
    daemon.run()
    return 0
