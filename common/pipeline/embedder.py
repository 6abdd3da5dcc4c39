"""Recognizers: aligned crops in, L2-normalised float32 embeddings out, all faces of a frame in one batch.

Preprocessing comes from the manifest: SFace takes RGB in 0..255 (it normalises inside the
graph); ArcFace takes RGB scaled by (x - 127.5) / 127.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from common.embedding import l2_normalize
from common.errors import ModelError
from common.pipeline.align import CROP_SIZE
from common.pipeline.runtime import OnnxModel


class Embedder:
    """Runs one recognizer model over batches of aligned 112x112 BGR crops."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self.model_id = model.manifest.id

    def preprocess(self, crops: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """The NCHW float batch the model takes."""
        manifest = self.model.manifest
        batch = cv2.dnn.blobFromImages(
            list(crops),
            scalefactor=1.0 / manifest.std,
            size=(CROP_SIZE, CROP_SIZE),
            mean=(manifest.mean,) * 3,
            swapRB=manifest.color_order == "RGB",
        )
        return cast(NDArray[np.float32], batch)

    def embed(self, crops: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """One unit-length row per crop."""
        if not crops:
            return np.zeros((0, self.model.manifest.embedding_size), dtype=np.float32)
        raw = self.model.run(self.preprocess(crops))[0]
        if raw.shape[0] != len(crops):
            raise ModelError(f"{self.model_id} returned {raw.shape[0]} embeddings for {len(crops)} faces")
        vectors = raw.reshape(len(crops), -1)
        if vectors.shape[1] != self.model.manifest.embedding_size:
            raise ModelError(
                f"{self.model_id} returned {vectors.shape[1]}-d embeddings, its manifest says "
                f"{self.model.manifest.embedding_size}: is this the right kind of model?"
            )
        return l2_normalize(vectors)
