"""OpenCV's own YuNet + SFace pipeline as a command, run with its defaults (full-frame detection).

    python bench/opencv_reference.py IMAGE...    -> one JSON line per image, like `facegate embed --json`

This is the baseline `bench/process_speed.py` times against `facegate embed --json`. It uses the
same model files (from $FACEGATE_MODELS or ~/.cache/facegate/models).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

YUNET = "face_detection_yunet_2023mar.onnx"
SFACE = "face_recognition_sface_2021dec.onnx"


def main(paths: list[str]) -> int:
    models = Path(os.environ.get("FACEGATE_MODELS") or "~/.cache/facegate/models").expanduser()
    detector = cv2.FaceDetectorYN.create(str(models / YUNET), "", (320, 320), 0.6, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(str(models / SFACE), "")
    for path in paths:
        image = cv2.imread(path)
        if image is None:
            print(json.dumps({"image": path, "error": "unreadable"}))
            continue
        detector.setInputSize((image.shape[1], image.shape[0]))
        _, faces = detector.detect(image)
        out = []
        for face in [] if faces is None else faces:
            raw = recognizer.feature(recognizer.alignCrop(image, face)).reshape(-1).astype(np.float32)
            feature = raw / max(float(np.linalg.norm(raw)), 1e-12)
            out.append({"bbox": face[:4].tolist(), "embedding": feature.tolist()})
        print(json.dumps({"image": path, "faces": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
