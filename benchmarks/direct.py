"""Baseline (a): one Python process, pandas in chunks, the same model, predictions written.

The practical limit for this work without any framework. Run as a program so that its
time and peak memory are measured the same way as an instance's.

    python -m benchmarks.direct MODEL.joblib OUTPUT_DIR INPUT.csv [INPUT.csv ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

CHUNK_ROWS = 60_000  # about 6 MiB of these rows, the size of a default mini-batch


def score_file(model: object, source: Path, target: Path) -> None:
    with target.open("w") as out:
        for frame in pd.read_csv(source, header=None, dtype=np.float64, chunksize=CHUNK_ROWS):
            scores = model.predict_proba(frame.to_numpy())[:, 1]  # type: ignore[attr-defined]
            out.write("\n".join(np.char.mod("%.6f", scores).tolist()) + "\n")


def main(argv: list[str]) -> None:
    model = joblib.load(argv[0])
    output = Path(argv[1])
    output.mkdir(parents=True, exist_ok=True)
    for name in argv[2:]:
        source = Path(name)
        score_file(model, source, output / f"{source.name}.out")


if __name__ == "__main__":
    main(sys.argv[1:])
