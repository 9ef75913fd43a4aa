"""A real transform job on the embedded default, end to end.

Trains a small scikit-learn model on the breast-cancer data set that scikit-learn ships,
packs it as a SageMaker ``model.tar.gz`` with ``code/inference.py``, writes the features as
several CSV files (one of them in a sub-folder), runs a job with 2 instances and checks the
predictions against the labels.

    python examples/demo/run_demo.py WORKDIR
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tarfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from batchtransform import NotFoundError, Session, Transformer

HERE = Path(__file__).parent
PARTS = ("part-0.csv", "part-1.csv", "part-2.csv", "more/part-3.csv")


def build_model(work: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    features, labels = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features, labels)
    staging = work / "model"
    (staging / "code").mkdir(parents=True)
    joblib.dump(model, staging / "model.joblib")
    shutil.copy(HERE / "inference.py", staging / "code" / "inference.py")
    archive = work / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(staging)), recursive=False)
    return archive, features, labels


def write_inputs(work: Path, features: np.ndarray) -> list[np.ndarray]:
    chunks = np.array_split(features, len(PARTS))
    for name, chunk in zip(PARTS, chunks, strict=True):
        path = work / "input" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, chunk, delimiter=",", fmt="%.6g")
    return chunks


def main(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    archive, features, labels = build_model(work)
    write_inputs(work, features)

    session = Session()
    with contextlib.suppress(NotFoundError):  # left by an earlier run
        session.delete_model(ModelName="breast-cancer")
    session.create_model(
        ModelName="breast-cancer",
        PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
    )
    transformer = Transformer(
        model_name="breast-cancer",
        instance_count=2,
        instance_type="local",
        output_path=(work / "output").as_uri(),
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        max_payload=1,
        max_concurrent_transforms=2,
        sagemaker_session=session,
    )
    transformer.transform(
        (work / "input").as_uri() + "/",
        content_type="text/csv",
        split_type="Line",
        wait=True,
        logs=False,
    )
    report(transformer, work, labels)


def report(transformer: Transformer, work: Path, labels: np.ndarray) -> None:
    description = transformer.describe()
    progress = description["Progress"]
    elapsed = description["TransformEndTime"] - description["CreationTime"]
    scores = np.concatenate([np.loadtxt(work / "output" / f"{p}.out", ndmin=1) for p in PARTS])
    accuracy = float(np.mean((scores > 0.5) == labels))
    print(f"\nJob {description['TransformJobName']}: {description['TransformJobStatus']}")
    print(f"  objects  {progress['ObjectsCompleted']}/{progress['ObjectsTotal']}")
    print(f"  records  {progress['RecordsProcessed']} in {elapsed.total_seconds():.1f} s")
    print(f"  accuracy {accuracy:.3f} against the data set's labels")
    print(f"Output: {work / 'output'}")
    for part in PARTS:
        print(f"  {part}.out")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".demo").resolve())
