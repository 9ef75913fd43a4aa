"""The Python runtime's default codecs: toolkit-compatible values, fast CSV, HTTP statuses."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from batchtransform.errors import ModelError
from batchtransform.runtimes import codecs, media

RANDOM_ROWS = np.random.default_rng(0).normal(size=(200, 5)) * 1000
RANDOM_CSV = "\n".join(",".join(repr(float(x)) for x in row) for row in RANDOM_ROWS) + "\n"

# CSV bodies that np.genfromtxt(StringIO(text), delimiter=",") reads; decode must agree.
CSV_CASES = {
    "several rows": "1,2,3\n4,5,6\n7,8,9",
    "one row": "1,2,3",
    "one column": "1\n2\n3",
    "one value": "5",
    "trailing newline": "1,2\n3,4\n",
    "CRLF": "1,2\r\n3,4\r\n",
    "blank trailing line": "1,2\n3,4\n\n",
    "blank line between rows": "1,2\n\n3,4\n",
    "space-only line": "1,2\n   \n3,4\n",
    "tab-only line": "1\n\t\n2\n",
    "non-numeric field": "1,a,3\n4,5,6\n",
    "booleans": "true,False\n",
    "NA spellings": "NA,N/A,null,None\n",
    "empty field": "1,,3\n4,5,6\n",
    "trailing comma": "1,2,\n",
    "scientific notation": "1e5,2.5E-3,-3e+2,1E400\n",
    "negative numbers": "-1,-2.5,-0,-.5\n",
    "nan and inf": "nan,inf,-inf,Infinity\n",
    "spaces around fields": " 1 , 2 ,3 \n",
    "quoted field": '"1",2\n',
    "comment": "1,2 # note\n# a comment line\n3,4\n",
    "lone carriage return": "1,2\r3,4\n",
    "byte order mark": "\ufeff1,2\n",
    "underscore digits": "1_000,2\n",
    "unicode digits": "\u0661,2\n",
    "exact floats": "0.1,0.30000000000000004,1.7976931348623157e308,4.9e-324,1e-320\n",
    "long mantissa": "123456789012345678901234567890,1.700000000000000177635684\n",
    "halfway rounding": "9007199254740993,2.4703282292062328e-324\n",
    "random 200x5": RANDOM_CSV,
}


def genfromtxt(text: str) -> Any:
    return np.genfromtxt(io.StringIO(text), delimiter=",")


def assert_same_array(actual: Any, expected: Any) -> None:
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)  # NaN equals NaN here


@pytest.mark.parametrize("text", CSV_CASES.values(), ids=CSV_CASES.keys())
def test_csv_decode_equals_genfromtxt(text: str) -> None:
    assert_same_array(codecs.decode(text.encode(), "text/csv"), genfromtxt(text))


@pytest.mark.parametrize("text", CSV_CASES.values(), ids=CSV_CASES.keys())
@pytest.mark.parametrize("parse", [codecs._csv_with_pandas, codecs._csv_with_loadtxt])
def test_fast_csv_parsers_agree_or_decline(parse: Any, text: str) -> None:
    array = parse(text.encode())
    if array is not None:
        assert_same_array(array, genfromtxt(text))


def test_plain_numbers_take_a_fast_parser() -> None:
    assert codecs._csv_with_loadtxt(RANDOM_CSV.encode()) is not None


@pytest.mark.parametrize("text", ["", "\n", "  \r\n \n", "# only a comment\n"])
def test_csv_without_rows_is_an_empty_array(text: str) -> None:
    assert_same_array(codecs.decode(text.encode(), "text/csv"), np.empty(0))


@pytest.mark.parametrize("text", ["1,2\n3\n", "1\n2,3\n", "1,2\n3 # ,\n", "1,2\n\t\n"])
def test_csv_with_ragged_rows_is_a_400(text: str) -> None:
    with pytest.raises(ModelError) as caught:
        codecs.decode(text.encode(), "text/csv")
    assert caught.value.model_status == 400
    assert "text/csv" in caught.value.message


def test_csv_decode_accepts_str() -> None:
    assert_same_array(codecs.decode("1,2\n3,4\n", "text/csv"), np.array([[1.0, 2.0], [3.0, 4.0]]))


ARRAYS = {
    "2-D floats": np.array([[0.1, -2.5, 1e16], [np.inf, 3.0, 5e-324]]),
    "1-D ints": np.array([0, 1, 1, 0]),
    "2-D ints": np.arange(6).reshape(3, 2),
}


@pytest.mark.parametrize("content_type", ["text/csv", "application/json", "application/x-npy"])
@pytest.mark.parametrize("array", ARRAYS.values(), ids=ARRAYS.keys())
def test_round_trip(content_type: str, array: Any) -> None:
    body, used = codecs.encode(array, content_type)
    assert used == content_type
    decoded = codecs.decode(body, content_type)
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("content_type", ["application/jsonlines", "application/x-jsonlines"])
@pytest.mark.parametrize("array", ARRAYS.values(), ids=ARRAYS.keys())
def test_json_lines_round_trip(content_type: str, array: Any) -> None:
    body, used = codecs.encode(array, content_type)
    assert used == content_type
    assert body.count(b"\n") == len(array) and body.endswith(b"\n")
    np.testing.assert_array_equal(codecs.decode(body, content_type), array)


def test_round_trip_keeps_nan_in_json_and_npy() -> None:
    array = np.array([[np.nan, 1.0], [2.0, np.nan]])
    for content_type in ("application/json", "application/x-npy", "text/csv"):
        body, _ = codecs.encode(array, content_type)
        np.testing.assert_array_equal(codecs.decode(body, content_type), array)


def test_json_lines_decode_skips_blank_lines() -> None:
    decoded = codecs.decode(b"[1, 2]\n\n  \n[3, 4]\r\n", "application/jsonlines")
    np.testing.assert_array_equal(decoded, [[1, 2], [3, 4]])


def savetxt(value: Any) -> bytes:
    stream = io.StringIO()
    np.savetxt(stream, value, fmt="%s", delimiter=",")
    return stream.getvalue().encode()


CSV_ENCODE_CASES = {
    "2-D float64": np.array([[0.1, 1e16, -0.0], [np.nan, np.inf, 1e-5]]),
    "1-D float64": np.array([0.5, 1.0, 123456789.123]),
    "1-D int": np.array([0, 1, 2]),
    "2-D uint8": np.array([[1, 2], [3, 4]], dtype=np.uint8),
    "bool": np.array([True, False]),
    "strings": np.array(["a", "b c"]),
    "float32 (savetxt path)": np.array([[0.1, 2.5]], dtype=np.float32),
    "complex (savetxt path)": np.array([1 + 2j]),
    "list of lists": [[1.5, 2], [3, 4]],
    "list": [1, 2, 3],
    "empty": np.array([]),
}


@pytest.mark.parametrize("value", CSV_ENCODE_CASES.values(), ids=CSV_ENCODE_CASES.keys())
def test_csv_encode_equals_savetxt(value: Any) -> None:
    assert codecs.encode(value, "text/csv") == (savetxt(value), "text/csv")


@pytest.mark.parametrize(("value", "expected"), [(5, b"5\n"), (np.float64(0.25), b"0.25\n")])
def test_csv_encodes_a_scalar_as_one_line(value: Any, expected: bytes) -> None:
    assert codecs.encode(value, "text/csv")[0] == expected


def test_csv_encodes_non_ascii_text_as_utf8() -> None:
    assert codecs.encode(np.array(["é"]), "text/csv")[0] == "é\n".encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.array([[1.0, 2.5]]), "[[1.0, 2.5]]"),
        ([np.int64(3), np.float32(0.5)], "[3, 0.5]"),
        ({"scores": np.array([1, 2])}, '{"scores": [1, 2]}'),
        (7, "7"),
    ],
)
def test_json_encode_uses_tolist_for_numpy(value: Any, expected: str) -> None:
    assert codecs.encode(value, "application/json") == (expected.encode(), "application/json")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.array([[1, 2], [3, 4]]), b"[1, 2]\n[3, 4]\n"),
        ([{"a": 1}, {"a": 2}], b'{"a": 1}\n{"a": 2}\n'),
        ({"a": 1}, b'{"a": 1}\n'),
        (3.5, b"3.5\n"),
    ],
)
def test_json_lines_encode_writes_a_line_per_row(value: Any, expected: bytes) -> None:
    assert codecs.encode(value, "application/jsonlines")[0] == expected


@pytest.mark.parametrize(
    ("value", "content_type"),
    [
        (np.zeros((2, 2, 2)), "text/csv"),
        ([[1, 2], [3]], "text/csv"),
        (object(), "application/json"),
        ([object()], "application/jsonlines"),
    ],
)
def test_prediction_that_does_not_encode_is_a_500(value: Any, content_type: str) -> None:
    with pytest.raises(ModelError) as caught:
        codecs.encode(value, content_type)
    assert caught.value.model_status == 500
    assert content_type in caught.value.message


@pytest.mark.parametrize(
    "content_type", ["text/csv; charset=utf-8", "Text/CSV", " text/csv ;header=absent"]
)
def test_content_type_matches_without_parameters_and_case(content_type: str) -> None:
    np.testing.assert_array_equal(codecs.decode(b"1,2\n", content_type), [1.0, 2.0])


@pytest.mark.parametrize("content_type", ["text/libsvm", "application/x-npz", "", None])
def test_unknown_content_type_is_a_415(content_type: str | None) -> None:
    with pytest.raises(ModelError) as caught:
        codecs.decode(b"1", content_type)
    assert caught.value.model_status == 415
    assert not caught.value.retryable
    assert "text/csv" in caught.value.message and "input_fn" in caught.value.message
    if content_type:
        assert content_type in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"{not json", "application/json", "application/json"),
        (b"[1, 2]\n[3", "application/jsonlines", "application/jsonlines"),
        (b"\xff\xfe1,2", "text/csv", "text/csv"),
        (b"not an npy file", "application/x-npy", "npy"),
    ],
)
def test_body_that_does_not_decode_is_a_400(body: bytes, content_type: str, words: str) -> None:
    with pytest.raises(ModelError) as caught:
        codecs.decode(body, content_type)
    assert caught.value.model_status == 400
    assert words in caught.value.message


def test_pickled_npy_is_refused() -> None:
    stream = io.BytesIO()
    np.save(stream, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelError) as caught:
        codecs.decode(stream.getvalue(), "application/x-npy")
    assert caught.value.model_status == 400
    assert "pickle" in caught.value.message


def test_npz_archive_is_not_npy() -> None:
    stream = io.BytesIO()
    np.savez(stream, a=np.arange(3))
    with pytest.raises(ModelError, match=r"not a \.npy file"):
        codecs.decode(stream.getvalue(), "application/x-npy")


@pytest.mark.parametrize(
    ("accept", "default", "expected"),
    [
        (None, None, "application/json"),
        ("", None, "application/json"),
        ("*/*", None, "application/json"),
        (None, "text/csv", "text/csv"),
        ("*/*", "application/x-npy", "application/x-npy"),
        ("text/csv", "application/x-npy", "text/csv"),
        ("application/json;q=0.1, text/csv", None, "application/json"),
        ("image/png, text/csv", None, "text/csv"),
        ("image/png, */*", "text/csv", "text/csv"),
        (" TEXT/CSV ; charset=utf-8", None, "text/csv"),
        ("application/x-jsonlines", None, "application/x-jsonlines"),
    ],
)
def test_accept_choice(
    monkeypatch: pytest.MonkeyPatch, accept: str | None, default: str | None, expected: str
) -> None:
    if default is None:
        monkeypatch.delenv(media.DEFAULT_ACCEPT_ENV, raising=False)
    else:
        monkeypatch.setenv(media.DEFAULT_ACCEPT_ENV, default)
    assert codecs.encode([1], accept)[1] == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/csv", ["text/csv"]),
        ("text/csv, application/json", ["text/csv", "application/json"]),
        ("application/json; q=0.9 ,Text/CSV;q=1", ["application/json", "text/csv"]),
        (" , text/csv,,", ["text/csv"]),
        ("", []),
    ],
)
def test_parse_accept(accept: str, expected: list[str]) -> None:
    assert media.parse_accept(accept) == expected


@pytest.mark.parametrize(
    ("accept", "environment", "expected"),
    [
        (None, {}, "application/json"),
        ("*/*", {media.DEFAULT_ACCEPT_ENV: "text/csv"}, "text/csv"),
        (None, {media.DEFAULT_ACCEPT_ENV: "*/*"}, "application/json"),
        ("text/csv", {media.DEFAULT_ACCEPT_ENV: "application/json"}, "text/csv"),
    ],
)
def test_resolve_accept(accept: str | None, environment: dict[str, str], expected: str) -> None:
    assert media.resolve_accept(accept, environment) == expected


@pytest.mark.parametrize("accept", ["image/png", "text/html, application/xml"])
def test_unsupported_accept_is_a_406(accept: str) -> None:
    with pytest.raises(ModelError) as caught:
        codecs.encode([1], accept)
    assert caught.value.model_status == 406
    assert accept in caught.value.message and "output_fn" in caught.value.message


def test_json_decode_matches_toolkit() -> None:
    decoded = codecs.decode(json.dumps([[1, 2.5], [3, 4]]).encode(), "application/json")
    np.testing.assert_array_equal(decoded, np.array([[1, 2.5], [3, 4]]))
