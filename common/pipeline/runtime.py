"""ONNX Runtime sessions, built in one place, and the backend that runs each model.

Providers: CUDA when onnxruntime-gpu is installed and the session really got it (checked with
`session.get_providers()`), the CPU otherwise. On the CPU the fixed and optimised graph is cached
on disk, keyed by the model's sha256, the onnxruntime version, the optimisation level and the CPU,
so a process start loads it in a fraction of the time an optimisation pass takes.

On the CPU a model may run in OpenCV's DNN module instead, where that is faster on this CPU
(`common.pipeline.backends`); the onnxruntime session is still built, to check the model's signature.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import msgspec
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from common.errors import ModelError
from common.models.manifest import ModelManifest, sha256_file
from common.pipeline.backends import ONNXRUNTIME, OPENCV, Backend, OpenCvNet, choose, cpu_flags
from common.pipeline.graph import GRAPH_VERSION, fix_graph

log = logging.getLogger(__name__)

Providers = Literal["auto", "cpu", "cuda"]
OptLevel = Literal["disable", "basic", "extended", "all"]
_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
OUTPUTS = {"yunet": 12, "scrfd": 9, "sface": 1, "arcface": 1}  # the signature each family must have
_ORT_ERRORS = (
    RuntimeError,
    ort.capi.onnxruntime_pybind11_state.Fail,
    ort.capi.onnxruntime_pybind11_state.InvalidArgument,
    ort.capi.onnxruntime_pybind11_state.RuntimeException,
)


class RuntimeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How sessions are built. Every field has a documented default (docs/pipeline.md)."""

    providers: Providers = "auto"
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    inter_op_threads: int = 0
    graph_optimization: OptLevel = "all"
    cache_optimized: bool = True  # keep the optimised graph on disk (CPU only)
    warmup: bool = True  # run each model once at load so the first frame is not slow
    # Idle onnxruntime threads spin-wait for work by default, stealing the cores from OpenCV's
    # resize and alignment between model runs; off by default (see docs/pipeline.md).
    spin_wait: bool = False
    # auto: the faster of onnxruntime and OpenCV's DNN on this CPU, probed once and cached (CUDA: onnxruntime)
    backend: Backend = "auto"


@dataclass(slots=True)
class RunStats:
    """Time spent inside `session.run` (the bare model time), the number of calls, and the rows (the
    batch sizes summed: frames for a detector, faces for a recognizer)."""

    seconds: float = 0.0
    calls: int = 0
    rows: int = 0


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """A loaded model: its manifest, session, input name and the provider it really runs on."""

    manifest: ModelManifest
    session: ort.InferenceSession
    input_name: str
    output_names: tuple[str, ...]
    provider: str
    stats: RunStats = field(default_factory=RunStats)
    net: OpenCvNet | None = None  # set when OpenCV's DNN runs the model instead of the session

    @property
    def backend(self) -> str:
        """What runs the model: `opencv`, or `onnxruntime` with its execution provider."""
        return OPENCV if self.net is not None else f"{ONNXRUNTIME} ({self.provider})"

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """Run the graph on one input tensor, returning every output in graph order."""
        start = time.perf_counter()
        try:
            if self.net is not None:
                outputs = self.net.run(tensor)
            else:
                outputs = self.session.run(None, {self.input_name: tensor})
        except (*_ORT_ERRORS, cv2.error) as err:
            raise ModelError(
                f"{self.manifest.id} ({self.manifest.file}) failed on a {list(tensor.shape)} input: is it "
                f"really a {self.manifest.family} model? ({err})"
            ) from err
        self.stats.seconds += time.perf_counter() - start
        self.stats.calls += 1
        self.stats.rows += tensor.shape[0]
        return outputs


def load_model(manifest: ModelManifest, path: Path, settings: RuntimeSettings) -> OnnxModel:
    """Build a session for `path`, verified against the manifest's sha256 before it is loaded."""
    providers = _providers(settings.providers)
    options = _options(settings)
    cache_dir = path.parent / ".optimized"
    cached = None
    if providers == [CPU] and settings.cache_optimized and settings.graph_optimization != "disable":
        cached = _cached_optimized(manifest, path, cache_dir, settings)
    if cached is not None:
        source: str | bytes = cached
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        _verify(manifest, path, cache_dir)
        source = fix_graph(path.read_bytes(), manifest)
    session = _session(source, options, providers, manifest)
    _check_signature(session, manifest)
    got = session.get_providers()[0]
    if settings.providers == "cuda" and got != CUDA:
        raise ModelError(f"{manifest.id}: the CUDA provider was asked for but the session got {got}")
    if CUDA in providers and got != CUDA:
        log.warning("cuda_provider_unavailable", extra={"model": manifest.id, "provider": got})
    model = OnnxModel(
        manifest=manifest,
        session=session,
        input_name=session.get_inputs()[0].name,
        output_names=tuple(o.name for o in session.get_outputs()),
        provider=got,
    )
    net = _opencv_net(model, path, cache_dir, settings)
    if net is not None:
        model = OnnxModel(model.manifest, session, model.input_name, model.output_names, got, net=net)
    if settings.warmup:
        warm_up(model)
    return model


def _opencv_net(model: OnnxModel, path: Path, cache_dir: Path, settings: RuntimeSettings) -> OpenCvNet | None:
    """OpenCV's net for the model when the settings ask for it, or when `auto` measured it faster."""
    if settings.backend == ONNXRUNTIME or (settings.backend == "auto" and model.provider == CUDA):
        return None
    if settings.backend == OPENCV:
        return OpenCvNet(path, model.output_names, model.manifest)

    def ort_run(tensor: NDArray[np.float32]) -> object:
        return model.session.run(None, {model.input_name: tensor})

    _, net = choose(
        model.manifest,
        path,
        cache_dir=cache_dir,
        threads=settings.intra_op_threads,
        output_names=model.output_names,
        ort_run=ort_run,
    )
    return net


def _check_signature(session: ort.InferenceSession, manifest: ModelManifest) -> None:
    outputs = len(session.get_outputs())
    if outputs != OUTPUTS[manifest.family]:
        raise ModelError(
            f"{manifest.file} has {outputs} outputs, but {manifest.family} {manifest.kind}s have "
            f"{OUTPUTS[manifest.family]}: is this the right kind of model?"
        )


def warm_up(model: OnnxModel) -> None:
    """Run the model once on zeros at its nominal input size."""
    width, height = model.manifest.input_size
    if model.manifest.kind == "detector":
        width, height = 160, 160
    model.run(np.zeros((1, 3, height, width), dtype=np.float32))


def _providers(wanted: Providers) -> list[str]:
    available = ort.get_available_providers()
    if wanted == "cpu":
        return [CPU]
    if wanted == "cuda" and CUDA not in available:
        raise ModelError("providers=cuda but onnxruntime has no CUDA provider: install facegate[gpu]")
    return [CUDA, CPU] if CUDA in available else [CPU]


def _options(settings: RuntimeSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[settings.graph_optimization]
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.log_severity_level = 3
    if not settings.spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(
    source: str | bytes, options: ort.SessionOptions, providers: list[str], manifest: ModelManifest
) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except _ORT_ERRORS as err:
        raise ModelError(f"onnxruntime cannot load {manifest.id} ({manifest.file}): {err}") from err


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _verify(manifest: ModelManifest, path: Path, cache_dir: Path) -> None:
    """Check the sha256 of a model file; a stamp of its stat skips re-hashing an unchanged file."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: run `facegate models fetch`")
    stamp_path = cache_dir / f"{manifest.sha256}.verified.json"
    stamp = _stamp(path)
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise ModelError(
            f"model file {path} is corrupt (sha256 {actual[:16]}…, expected {manifest.sha256[:16]}…): "
            "run `facegate models fetch` to replace it"
        )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(stamp_path, json.dumps(stamp).encode())
    except OSError as err:  # a read-only model folder: verify by hash at every load instead
        log.warning("model_stamp_unwritable", extra={"model": manifest.id, "error": str(err)})


def _cpu_tag() -> str:
    return hashlib.sha256(f"{platform.machine()} {cpu_flags()}".encode()).hexdigest()[:8]


def _cached_optimized(
    manifest: ModelManifest, path: Path, cache_dir: Path, settings: RuntimeSettings
) -> str | None:
    """Path of the fixed and optimised graph, building it when missing or stale; None when the
    cache folder cannot be written (the caller then optimises in memory)."""
    _verify(manifest, path, cache_dir)
    level, tag = settings.graph_optimization, _cpu_tag()
    key = f"{manifest.sha256[:16]}-g{GRAPH_VERSION}-ort{ort.__version__}-{level}-{tag}"
    cached = cache_dir / f"{manifest.id}-{key}.onnx"
    meta = cached.with_suffix(".json")
    if cached.is_file() and meta.is_file() and json.loads(meta.read_text()) == _stamp(cached):
        return str(cached)
    fixed = fix_graph(path.read_bytes(), manifest)
    tmp = cached.with_suffix(f".tmp{os.getpid()}.onnx")
    options = _options(settings)
    options.optimized_model_filepath = str(tmp)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _session(fixed, options, [CPU], manifest)
        tmp.replace(cached)
        _atomic_write(meta, json.dumps(_stamp(cached)).encode())
    except OSError as err:
        log.warning("model_cache_unwritable", extra={"model": manifest.id, "error": str(err)})
        return None
    log.info("model_optimized_cached", extra={"model": manifest.id, "path": str(cached)})
    return str(cached)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
