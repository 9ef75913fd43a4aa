"""Handler scripts written as the public SageMaker examples write them, one per library
family of the framework images; the tests copy them into model folders unchanged."""

from pathlib import Path

HANDLERS = Path(__file__).parent


def source(name: str) -> str:
    """The text of the handler script ``name`` in this folder."""
    return (HANDLERS / name).read_text()
