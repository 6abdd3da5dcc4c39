"""Small ONNX graphs with the signatures of InsightFace's SCRFD detector and ArcFace recognizer.

They stand in for users' own model files in tests: a few kilobytes, built in milliseconds, with
outputs computed from the input so that the decoding can be checked exactly.

SCRFD-like graph. Per stride s the pooled values are means of the normalised grey image:
`inner` over the 4s x 4s window centred on each anchor point (cell corner (col*s, row*s), as
InsightFace places anchors), `outer` over the 8s x 8s window around it. The score is
sigmoid(SHARPNESS * (inner - outer - EDGE)): high only where the anchor's box (the graph predicts
BOX_DISTANCE = 2 strides on every side, so a 4s x 4s box) holds a bright square that its
surroundings do not, so a white square of side 4s centred on an anchor point of stride s on black
gives exactly one cell above 0.9 (its two anchors) and every other cell of every stride under 0.1.
Landmark offsets are the constant KPS_OFFSETS in stride units (right eye, left eye, nose, right and
left mouth corner; the subject's right is on the image's left).

ArcFace-like graph: 14x14 average pooling to [N, 3, 8, 8], flatten, and a seeded random Gemm to
512 values (no normalisation: the pipeline normalises).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
INPUT_NAME = "input.1"
STRIDES = (8, 16, 32)
ANCHORS = 2
BOX_DISTANCE = 2.0  # in stride units, for all four sides
SHARPNESS = 16.0
EDGE = 1.25  # inner - outer is about 1.49 for an exactly fitting white square, at most 1.0 otherwise
KPS_OFFSETS = np.array(
    [[-0.8, -0.6], [0.8, -0.6], [0.0, 0.2], [-0.6, 0.9], [0.6, 0.9]], dtype=np.float32
)  # in stride units from the anchor point
EMBEDDING_SIZE = 512
ARCFACE_OUTPUT = "683"
ARCFACE_POOLED = 8  # 112 / 14
ARCFACE_SEED = 1234


def _const(name: str, values: NDArray[np.float32] | NDArray[np.int64]) -> TensorProto:
    return numpy_helper.from_array(values, name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facegate-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def scrfd_cells(height: int, width: int, stride: int) -> int:
    """Number of grid cells of one stride for an input of `height` x `width` (multiples of 32)."""
    return (height // stride) * (width // stride)


def build_scrfd(
    path: Path, batched_outputs: bool = False, fixed_size: int | None = 640, landmarks: bool = True
) -> Path:
    """Write an SCRFD-like detector to `path` and return the path.

    The input is "input.1", [1, 3, fixed_size, fixed_size] like real exports (so the loader must
    make height and width dynamic), or [1, 3, "height", "width"] when `fixed_size` is None. The
    nine outputs are scores, box distances and landmark offsets for strides 8, 16 and 32, shaped
    [cells * 2, k], or [1, cells * 2, k] with `batched_outputs`. Without `landmarks` the graph has
    only the first six, like InsightFace's SCRFD exports without keypoints.
    """
    spatial: list[int | str] = ["height", "width"] if fixed_size is None else [fixed_size, fixed_size]
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, *spatial])
    nodes = [helper.make_node("ReduceMean", [INPUT_NAME], ["grey"], axes=[1], keepdims=1)]
    initializers = [
        _const("zero", np.array(0.0, dtype=np.float32)),
        _const("edge", np.array(EDGE, dtype=np.float32)),
        _const("sharpness", np.array(SHARPNESS, dtype=np.float32)),
        _const("box_distances", np.full(ANCHORS * 4, BOX_DISTANCE, dtype=np.float32)),
        _const("kps_offsets", np.tile(KPS_OFFSETS.reshape(-1), ANCHORS)),
    ]
    lead = [1] if batched_outputs else []
    for width in (1, 4, 10):
        initializers.append(_const(f"shape{width}", np.array([*lead, -1, width], dtype=np.int64)))
    scores, boxes, kps = [], [], []
    for stride in STRIDES:
        s = str(stride)
        nodes += [
            # Means over the 4s and 8s windows centred on each anchor point (pads excluded).
            helper.make_node(
                "AveragePool",
                ["grey"],
                [f"inner{s}"],
                kernel_shape=[4 * stride] * 2,
                strides=[stride] * 2,
                pads=[2 * stride, 2 * stride, stride, stride],
            ),
            helper.make_node(
                "AveragePool",
                ["grey"],
                [f"outer{s}"],
                kernel_shape=[8 * stride] * 2,
                strides=[stride] * 2,
                pads=[4 * stride, 4 * stride, 3 * stride, 3 * stride],
            ),
            helper.make_node("Sub", [f"inner{s}", f"outer{s}"], [f"contrast{s}"]),
            helper.make_node("Sub", [f"contrast{s}", "edge"], [f"centred{s}"]),
            helper.make_node("Mul", [f"centred{s}", "sharpness"], [f"logit{s}"]),
            helper.make_node("Sigmoid", [f"logit{s}"], [f"prob{s}"]),
            helper.make_node("Transpose", [f"prob{s}"], [f"cells{s}"], perm=[0, 2, 3, 1]),  # [1, h, w, 1]
            helper.make_node("Concat", [f"cells{s}", f"cells{s}"], [f"anchors{s}"], axis=3),
            helper.make_node("Reshape", [f"anchors{s}", "shape1"], [f"score{s}"]),
            # Constant predictions, shaped by the input: 0 * cells + constants per anchor.
            helper.make_node("Mul", [f"cells{s}", "zero"], [f"zeros{s}"]),
            helper.make_node("Add", [f"zeros{s}", "box_distances"], [f"dist{s}"]),  # [1, h, w, 8]
            helper.make_node("Reshape", [f"dist{s}", "shape4"], [f"bbox{s}"]),
        ]
        if landmarks:
            nodes += [
                helper.make_node("Add", [f"zeros{s}", "kps_offsets"], [f"points{s}"]),  # [1, h, w, 20]
                helper.make_node("Reshape", [f"points{s}", "shape10"], [f"kps{s}"]),
            ]
        scores.append(f"score{s}")
        boxes.append(f"bbox{s}")
        if landmarks:
            kps.append(f"kps{s}")
    # Rename the nine outputs to numbers, as real exports name them ("448", "471", ...).
    outputs = []
    for number, name in enumerate(scores + boxes + kps):
        out_name = str(448 + number)
        nodes.append(helper.make_node("Identity", [name], [out_name]))
        width = (1, 4, 10)[number // 3]
        stride = STRIDES[number % 3]
        rows: int | str = (
            "anchors" if fixed_size is None else scrfd_cells(fixed_size, fixed_size, stride) * ANCHORS
        )
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [*lead, rows, width]))
    graph = helper.make_graph(nodes, "scrfd_like", [image], outputs, initializer=initializers)
    onnx.save(_model(graph), path)
    return path


def arcface_weights() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The Gemm weight [192, 512] and bias [512] of the ArcFace-like graph (seeded)."""
    rng = np.random.default_rng(ARCFACE_SEED)
    features = 3 * ARCFACE_POOLED * ARCFACE_POOLED
    weight = rng.standard_normal((features, EMBEDDING_SIZE)).astype(np.float32)
    bias = rng.standard_normal(EMBEDDING_SIZE).astype(np.float32) * np.float32(0.1)
    return weight, bias


def build_arcface(path: Path, fixed_batch: bool = True, weights_as_inputs: bool = False) -> Path:
    """Write an ArcFace-like recognizer to `path` and return the path.

    Input "input.1" [1, 3, 112, 112] (the batch fixed at 1, as many exports have it) or
    ["None", 3, 112, 112]; output "683" [batch, 512]. With `weights_as_inputs` the Gemm weight is
    also listed among the graph inputs, as the shipped SFace file lists its weights.
    """
    batch: int | str = 1 if fixed_batch else "None"
    kernel = 112 // ARCFACE_POOLED
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, 3, 112, 112])
    output = helper.make_tensor_value_info(ARCFACE_OUTPUT, TensorProto.FLOAT, [batch, EMBEDDING_SIZE])
    weight, bias = arcface_weights()
    nodes = [
        helper.make_node(
            "AveragePool", [INPUT_NAME], ["pooled"], kernel_shape=[kernel] * 2, strides=[kernel] * 2
        ),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], [ARCFACE_OUTPUT]),
    ]
    inputs = [image]
    if weights_as_inputs:
        inputs.append(helper.make_tensor_value_info("fc.weight", TensorProto.FLOAT, list(weight.shape)))
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        inputs,
        [output],
        initializer=[_const("fc.weight", weight), _const("fc.bias", bias)],
    )
    onnx.save(_model(graph), path)
    return path


def arcface_reference(batch: NDArray[np.float32]) -> NDArray[np.float32]:
    """What the ArcFace-like graph computes for an NCHW batch, in numpy (before normalisation)."""
    n = batch.shape[0]
    kernel = 112 // ARCFACE_POOLED
    pooled = batch.reshape(n, 3, ARCFACE_POOLED, kernel, ARCFACE_POOLED, kernel).mean(axis=(3, 5))
    weight, bias = arcface_weights()
    out: NDArray[np.float32] = (pooled.reshape(n, -1) @ weight + bias).astype(np.float32)
    return out
