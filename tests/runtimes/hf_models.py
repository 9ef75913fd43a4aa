"""A tiny, randomly initialised Hugging Face text classifier built offline for tests.

A BERT of one layer and 16 hidden units over a made-up WordPiece vocabulary, saved with
``save_pretrained`` (model and tokenizer) as a SageMaker user's model folder would hold
it. The weights are drawn with a wide spread so that different texts get different
labels. Nothing is downloaded: the Hub is switched off for the test process as well.
"""

from __future__ import annotations

import json
import math
import socket
import tarfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

WORDS = [
    "good",
    "bad",
    "movie",
    "great",
    "awful",
    "the",
    "a",
    "is",
    "was",
    "film",
    "plot",
    "i",
    "liked",
    "hated",
    "boring",
    "fun",
    "story",
    "acting",
]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
TEXTS = [
    "good movie",
    "the plot was awful and i hated the film",
    "a great film",
    "boring acting",
    "i liked the movie",
    "bad",
    "fun story and great acting",
]
IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "huggingface-pytorch-inference:2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04"
)


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_environment(home: Path) -> dict[str, str]:
    """Variables that keep the Hugging Face libraries off the network, with a cache of
    their own: offline mode, and an endpoint on a closed loopback port besides."""
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@contextmanager
def offline(home: Path) -> Iterator[None]:
    """``offline_environment`` in this process until the block ends (set before
    transformers is imported, which reads it once)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in offline_environment(home).items():
            patch.setenv(name, value)
        yield


def build_text_classifier(folder: Path) -> Path:
    """Save the tiny classifier and its tokenizer into ``folder``; returns the folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = folder / "vocab.txt"
    vocabulary.write_text("\n".join(VOCABULARY) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocabulary))
    config = BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        initializer_range=1.0,
        id2label=LABELS,
        label2id={label: number for number, label in LABELS.items()},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def add_code(folder: Path, handler: str) -> Path:
    """``code/inference.py`` in the model folder, as the SageMaker SDK packs it."""
    (folder / "code").mkdir(exist_ok=True)
    (folder / "code" / "inference.py").write_text(textwrap.dedent(handler))
    return folder


def pack(folder: Path, archive: Path) -> Path:
    """``folder`` as a model.tar.gz, its files at the top as SageMaker expects them."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def json_lines(records: list[Any]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def answer_lines(body: bytes) -> list[Any]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body[:-1].split(b"\n")]


def assert_close(actual: Any, expected: Any) -> None:
    """Equal structure and labels; scores equal to float32 rounding (a padded batch)."""
    if isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=1e-5, abs_tol=1e-6), (actual, expected)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (actual, expected)
        for a, e in zip(actual, expected, strict=True):
            assert_close(a, e)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (actual, expected)
        for key in expected:
            assert_close(actual[key], expected[key])
    else:
        assert actual == expected
