"""Benchmark inputs: CSV rows of float features, and the model that scores them."""

from __future__ import annotations

import tarfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

FEATURES = 10
FLOAT_FORMAT = "%.6f"

# Parses the payload exactly as the direct baseline parses its chunks, so that the two
# differ only by what batchtransform adds.
HANDLER = """
import io
import os

import joblib
import numpy as np
import pandas as pd


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, body, content_type, accept):
    data = body.encode() if isinstance(body, str) else body
    frame = pd.read_csv(io.BytesIO(data), header=None, dtype=np.float64, engine="c")
    scores = model.predict_proba(frame.to_numpy())[:, 1]
    return "\\n".join(np.char.mod("%.6f", scores).tolist()) + "\\n"
"""

IDENTITY_HANDLER = """
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return body
"""


def write_csv_files(folder: Path, rows: int, files: int, seed: int = 0) -> list[Path]:
    """``rows`` rows split over ``files`` CSV files of FEATURES float columns."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index, count in enumerate(np.array_split(np.arange(rows), files)):
        frame = pd.DataFrame(rng.standard_normal((len(count), FEATURES)))
        path = folder / f"part-{index:03d}.csv"
        frame.to_csv(path, header=False, index=False, float_format=FLOAT_FORMAT)
        paths.append(path)
    return paths


def train_model(folder: Path) -> LogisticRegression:
    rng = np.random.default_rng(1)
    features = rng.standard_normal((2000, FEATURES))
    labels = (features @ rng.standard_normal(FEATURES) > 0).astype(int)
    return LogisticRegression().fit(features, labels)


def package_model(folder: Path, handler: str, model: LogisticRegression | None) -> Path:
    """A SageMaker ``model.tar.gz`` with ``code/inference.py``."""
    staging = folder / "staging"
    (staging / "code").mkdir(parents=True, exist_ok=True)
    (staging / "code" / "inference.py").write_text(handler)
    if model is not None:
        joblib.dump(model, staging / "model.joblib")
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(staging)), recursive=False)
    return archive
