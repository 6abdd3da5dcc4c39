"""Which library runs a model on this machine: onnxruntime or OpenCV's DNN module, measured once.

Neither is faster everywhere. On one Xeon onnxruntime runs YuNet several times faster than OpenCV's
DNN, while OpenCV runs SFace faster; on an AMD EPYC OpenCV was faster for SFace by more. So with
`pipeline.runtime.backend: auto` a short probe at load runs the model on a typical input in both
(alternating, best of a few runs each, to shrug off a busy neighbour) and keeps the faster. The
choice is remembered in `backends.json` next to the optimised graphs, keyed by the CPU model and
its flags, the model file's sha256, both libraries' versions and the thread setting, so a process
starts without probing again. A CUDA session always keeps onnxruntime (OpenCV's DNN here is CPU only).
Both run the same ONNX file, and give the same numbers to about 1e-6.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from common.errors import ModelError
from common.models.manifest import ModelManifest

log = logging.getLogger(__name__)

Backend = Literal["auto", "onnxruntime", "opencv"]
ONNXRUNTIME, OPENCV = "onnxruntime", "opencv"
CACHE_FILE = "backends.json"
PROBE_ROUNDS = 5
# OpenCV must win by this share to be chosen: onnxruntime takes batches from several threads at once
MARGIN = 0.05
Runner = Callable[[NDArray[np.float32]], object]


class OpenCvNet:
    """One ONNX file in cv2.dnn. A Net is not safe to run from two threads, so each thread that runs the
    model gets its own Net (read from the file on its first run), and threads never wait on each other."""

    def __init__(self, path: Path, output_names: tuple[str, ...], manifest: ModelManifest) -> None:
        self._path, self._manifest = path, manifest
        self._names = list(output_names)
        self._local = threading.local()
        self._local.net = self._read()  # fails here, at load, for a file OpenCV cannot read

    def _read(self) -> cv2.dnn.Net:
        try:
            return cv2.dnn.readNetFromONNX(str(self._path))
        except cv2.error as err:
            raise ModelError(
                f"OpenCV's DNN cannot read {self._manifest.id} ({self._path.name}): set "
                f"pipeline.runtime.backend to onnxruntime ({str(err).strip().splitlines()[-1]})"
            ) from err

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = self._read()
        net.setInput(tensor)
        outputs = net.forward(self._names)
        return [np.asarray(o, dtype=np.float32) for o in outputs]


def cpu_model() -> str:
    """The CPU's marketing name (`model name` in /proc/cpuinfo), or the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The vector extensions the CPU has: the same model name can hide different ones in a VM."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(f for f in line.split() if f.startswith(("avx", "fma", "sse4", "amx")))
    return ""


def probe_input(manifest: ModelManifest) -> NDArray[np.float32]:
    """A typical input: a 720p frame at detection size 640 for detectors, one face for recognizers."""
    shape = (1, 3, 384, 640) if manifest.kind == "detector" else (1, 3, *manifest.input_size[::-1])
    return np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)


def probe(
    runners: dict[str, Runner], tensor: NDArray[np.float32], rounds: int = PROBE_ROUNDS
) -> dict[str, float]:
    """Best milliseconds per run of each runner, alternating between them after one warm-up run each."""
    for run in runners.values():
        run(tensor)
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(tensor)
            best[name] = min(best[name], (time.perf_counter() - start) * 1000)
    return best


def faster(ms: dict[str, float]) -> str:
    """onnxruntime unless OpenCV is faster by more than MARGIN."""
    return OPENCV if ms[OPENCV] < ms[ONNXRUNTIME] * (1 - MARGIN) else ONNXRUNTIME


def cache_key(manifest: ModelManifest, threads: int) -> str:
    import onnxruntime as ort

    parts = [manifest.sha256, cpu_model(), cpu_flags(), str(os.cpu_count()), ort.__version__, cv2.__version__]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{manifest.id}-t{threads}-{digest}"


def choose(
    manifest: ModelManifest,
    path: Path,
    *,
    cache_dir: Path,
    threads: int,
    output_names: tuple[str, ...],
    ort_run: Runner,
) -> tuple[str, OpenCvNet | None]:
    """The faster backend for this model on this CPU, from the cache or a probe, and its OpenCV net
    when that is the one."""
    key = cache_key(manifest, threads)
    cache = _read(cache_dir / CACHE_FILE)
    known = cache.get(key, {}).get("backend")
    if known in (ONNXRUNTIME, OPENCV):
        return known, OpenCvNet(path, output_names, manifest) if known == OPENCV else None
    try:
        net = OpenCvNet(path, output_names, manifest)
    except ModelError as err:  # a user's model OpenCV cannot read: onnxruntime runs it
        log.warning("backend_opencv_unreadable", extra={"model": manifest.id, "error": str(err)})
        return ONNXRUNTIME, None
    ms = probe({ONNXRUNTIME: ort_run, OPENCV: net.run}, probe_input(manifest))
    backend = faster(ms)
    cache[key] = {"backend": backend, "cpu": cpu_model(), "ms": {k: round(v, 3) for k, v in ms.items()}}
    _write(cache_dir / CACHE_FILE, cache)
    log.info("backend_probed", extra={"model": manifest.id, "backend": backend, "cpu": cpu_model(), "ms": ms})
    return backend, net if backend == OPENCV else None


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:  # a torn or foreign file: probe again and rewrite it
        log.warning("backend_cache_unreadable", extra={"path": str(path), "error": str(err)})
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, object]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError as err:  # a read-only model folder: probe at every start instead
        log.warning("backend_cache_unwritable", extra={"path": str(path), "error": str(err)})
