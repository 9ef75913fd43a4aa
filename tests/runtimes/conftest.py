"""Fixtures of the Hugging Face tests: the tiny classifier, and the pipeline to compare with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtimes.hf_models import build_text_classifier, offline


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The model folder; the Hugging Face libraries stay offline while the module runs."""
    with offline(tmp_path_factory.mktemp("hf")):
        yield build_text_classifier(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module")
def reference(classifier: Path) -> Any:
    """The same pipeline, run by the test itself, one text at a time."""
    from transformers import pipeline

    return pipeline("text-classification", model=str(classifier), device=-1)
