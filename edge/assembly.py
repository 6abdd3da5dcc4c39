"""Turning a device file's sections into the settings of each edge component."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from common.errors import ConfigError
from common.mqtt.settings import MqttSettings
from edge.camera.sources import SourceKind, SourceSettings
from edge.config import schema as cfg
from edge.config.checks import infer_kind
from edge.delivery.outbox import OutboxSettings
from edge.delivery.publisher import PublisherSettings
from edge.gallery.index import IndexSettings
from edge.inference.crops import CropSettings
from edge.inference.tracker import TrackerSettings

CROP_HISTORY = 8  # main-stream frames kept to find the one nearest in time to a detected frame


def mqtt_settings(config: cfg.DeviceConfig) -> MqttSettings:
    broker = config.broker
    url = urlparse(broker.url)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(
            f"broker.url: expected mqtt://host[:port] or mqtts://host[:port], got {broker.url!r}"
        )
    tls = url.scheme == "mqtts"
    return MqttSettings(
        host=url.hostname,
        port=url.port or (8883 if tls else 1883),
        client_id=broker.client_id,
        username=broker.username or None,
        password=broker.password or None,
        ca_file=broker.ca_file or None,
        cert_file=broker.cert_file or None,
        key_file=broker.key_file or None,
        keepalive_s=broker.keepalive,
        tls=tls,
    )


def index_settings(gallery: cfg.GallerySettings) -> IndexSettings:
    return IndexSettings(
        m=gallery.index.m,
        ef_construction=gallery.index.ef_construction,
        ef_search=gallery.index.ef_search,
        exact_below=gallery.exact_below,
        person_match=gallery.person_match,
    )


def gallery_path(gallery: cfg.GallerySettings, gallery_id: str) -> Path:
    """One database per followed gallery: gallery.db -> gallery.<id>.db beside it."""
    base = Path(gallery.db_path)
    return base.with_name(f"{base.stem}.{gallery_id}{base.suffix or '.db'}")


def outbox_settings(outbox: cfg.OutboxSettings) -> OutboxSettings:
    return OutboxSettings(
        max_rows=outbox.max_rows,
        max_bytes=outbox.max_bytes,
        when_full=outbox.when_full,
        resend_after_s=outbox.resend_after_s,
        synchronous=outbox.synchronous,
    )


def publisher_settings(outbox: cfg.OutboxSettings) -> PublisherSettings:
    return PublisherSettings(batch=outbox.batch)


def tracker_settings(config: cfg.DeviceConfig) -> TrackerSettings:
    t, crops = config.tracker, config.crops
    return TrackerSettings(
        min_frames=t.min_frames,
        min_quality=config.thresholds.min_quality,
        min_score=t.min_score,
        iou_threshold=t.iou_threshold,
        embedding_similarity=t.embedding_similarity,
        timeout_s=t.timeout_s,
        max_embeddings=t.max_embeddings,
        vote=t.vote,
        reembed_s=t.reembed_s,
        crops=CropSettings(
            policy=crops.policy,
            max_side=crops.max_side,
            max_bytes=crops.max_bytes,
            jpeg_quality=crops.jpeg_quality,
            embedding=crops.embedding,
        ),
    )


def source_settings(camera: cfg.Camera) -> SourceSettings:
    return SourceSettings(fps_cap=camera.fps_cap, loop=camera.loop, realtime=camera.realtime)


def source_kind(camera: cfg.Camera) -> SourceKind:
    return SourceKind(camera.kind)


def crop_source_settings(camera: cfg.Camera) -> SourceSettings:
    """The main stream of a camera with a detection stream: every frame kept in a short history, from
    which the frame nearest in time to each detected one is taken for the crops."""
    return SourceSettings(fps_cap=None, loop=camera.loop, realtime=camera.realtime, history=CROP_HISTORY)


def detect_source_kind(camera: cfg.Camera) -> SourceKind:
    return SourceKind(infer_kind(camera.detect_source or "") or "stream")


def state_path(config: cfg.DeviceConfig, name: str) -> Path:
    """Small state files (sequence numbers) live beside the outbox."""
    return Path(config.outbox.path).with_name(name)
