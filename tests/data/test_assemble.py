"""assemble: AssembleWith None and Line."""

from __future__ import annotations

import pytest

from batchtransform.data.assemble import assemble


@pytest.mark.parametrize(
    ("responses", "assemble_with", "expected"),
    [
        pytest.param([b"1", b"2\n", b"3"], "None", b"12\n3", id="none-concatenates"),
        pytest.param([b"a\r\n", b"", b"b"], "None", b"a\r\nb", id="none-keeps-bytes"),
        pytest.param([], "None", b"", id="none-no-responses"),
        pytest.param([b"1", b"2"], "Line", b"1\n2\n", id="line-adds-newline"),
        pytest.param([b"1\n", b"2\n"], "Line", b"1\n2\n", id="line-does-not-double"),
        pytest.param([b"1\n2\n", b"3"], "Line", b"1\n2\n3\n", id="line-multi-line-response"),
        pytest.param([b"1\r\n", b"2"], "Line", b"1\r\n2\n", id="line-crlf-already-ends"),
        pytest.param([b"1", b"", b"3"], "Line", b"1\n\n3\n", id="line-empty-response-keeps-line"),
        pytest.param([b"1\n\n"], "Line", b"1\n\n", id="line-blank-line-kept"),
        pytest.param([], "Line", b"", id="line-no-responses"),
    ],
)
def test_assemble(responses: list[bytes], assemble_with: str, expected: bytes):
    assert b"".join(assemble(iter(responses), assemble_with)) == expected


def test_line_yields_no_empty_chunks():
    assert list(assemble([b"", b"a"], "Line")) == [b"\n", b"a", b"\n"]


def test_line_does_not_copy_responses():
    response = b"x" * 1000
    chunks = list(assemble([response], "Line"))
    assert chunks[0] is response
    assert chunks[1:] == [b"\n"]


@pytest.mark.parametrize("assemble_with", ["line", "Lines", "NONE"])
def test_unknown_assemble_with(assemble_with: str):
    with pytest.raises(ValueError, match="unknown AssembleWith"):
        assemble([], assemble_with)
