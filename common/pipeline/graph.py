"""In-memory fixes applied to model graphs before onnxruntime sees them (see MODELS.md).

- Weights listed as graph inputs (SFace's export does this) are removed from `graph.input`, which
  lets onnxruntime fold them as constants and silences hundreds of warnings.
- Fixed dimensions are made dynamic: the batch of every model, height and width of detectors (YuNet
  then takes several frames of one size in one run: see `Detector.detect_many`).
  Output and intermediate shapes are cleared so onnxruntime does not warn on every run.
"""

from __future__ import annotations

from typing import Any

from common.errors import ModelError
from common.models.manifest import ModelManifest

GRAPH_VERSION = 2  # part of the optimised-graph cache key: bump when fix_graph changes its output


def fix_graph(data: bytes, manifest: ModelManifest) -> bytes:
    """Return the serialised model with initializer inputs removed and dynamic shapes."""
    import onnx  # only needed when (re)building the cached optimised model
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)
    except DecodeError as err:
        raise ModelError(f"{manifest.file} is not a readable ONNX model: {err}") from err
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    real_inputs = [inp for inp in graph.input if inp.name not in initializers]
    if len(real_inputs) != 1:
        raise ModelError(f"{manifest.file} must have exactly one image input, it has {len(real_inputs)}")
    del graph.input[:]
    graph.input.extend(real_inputs)
    dims = graph.input[0].type.tensor_type.shape.dim  # extend() copied the messages
    if len(dims) != 4:
        raise ModelError(f"{manifest.file}: image input must be 4-d NCHW, it has {len(dims)} dimensions")
    _set_dynamic(dims[0], "batch")
    if manifest.kind == "detector":
        _set_dynamic(dims[2], "height")
        _set_dynamic(dims[3], "width")
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    return bytes(model.SerializeToString())


def _set_dynamic(dim: Any, name: str) -> None:
    dim.ClearField("dim_value")
    dim.dim_param = name
