"""Scenario (f): Ray Data ``map_batches`` with the same model and data, the peer a user
would otherwise pick. Run as a program, like the baseline, so its time counts Ray's own
start-up too:

    python -m benchmarks.ray_peer MODEL.joblib OUTPUT_DIR INPUT.csv [INPUT.csv ...]

The peak memory reported is the driver's; Ray's worker processes are not sampled. With
``RAY_ADDRESS`` set it joins that cluster instead of starting a Ray of its own.
"""

from __future__ import annotations

import os
import sys

import joblib
import numpy as np
import pandas as pd
import pyarrow.csv
import ray

from benchmarks.direct import CHUNK_ROWS


class Scorer:
    """One model per Ray actor, loaded once, as an instance of ours loads it."""

    def __init__(self, model_path: str) -> None:
        self.model = joblib.load(model_path)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        scores = self.model.predict_proba(frame.to_numpy(dtype=np.float64))[:, 1]
        return pd.DataFrame({"score": scores})


def main(argv: list[str]) -> None:
    model_path, output, inputs = argv[0], argv[1], argv[2:]
    if os.environ.get("RAY_ADDRESS"):  # a running cluster, as the Ray executor's rows use
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    names = pyarrow.csv.ReadOptions(autogenerate_column_names=True)
    dataset = ray.data.read_csv(inputs, read_options=names)
    scored = dataset.map_batches(
        Scorer,
        fn_constructor_args=(model_path,),
        batch_format="pandas",
        batch_size=CHUNK_ROWS,
        # one core is left for reading: actors holding every core starve the read tasks
        compute=ray.data.ActorPoolStrategy(size=max(1, (os.cpu_count() or 2) - 1)),
    )
    scored.write_csv(output)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
