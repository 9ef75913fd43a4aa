"""The JSONPath subset: a table of expression x record x result, and of rejections."""

from __future__ import annotations

import re
from typing import Any

import pytest

from batchtransform.data.jsonpath import MAX_LENGTH, parse_jsonpath

ROW = ["id1", "5.1", "3.5", "0.93"]  # a CSV record: an array of strings
DOC = {"id": "a", "features": [1, 2, 3], "meta": {"x": 1, "y": [True, None]}}

SELECTED: list[tuple[str, Any, Any]] = [
    # CSV rows: index paths only
    ("$", ROW, ROW),
    ("$[0]", ROW, "id1"),
    ("$[-1]", ROW, "0.93"),
    ("$[1:]", ROW, ["5.1", "3.5", "0.93"]),
    ("$[:]", ROW, ROW),
    ("$[1:2]", ROW, ["5.1", "3.5"]),  # the end is inclusive, as the AWS prose says
    ("$[:1]", ROW, ["id1", "5.1"]),
    ("$[1:-1]", ROW, ["5.1", "3.5", "0.93"]),  # -1 is the last column, included
    ("$[-2:]", ROW, ["3.5", "0.93"]),
    ("$[2:99]", ROW, ["3.5", "0.93"]),  # a slice past the end is clipped
    ("$[0,9:]", ["a"], ["a"]),
    ("$[3:1]", ROW, []),
    ("$[0,-1]", ROW, ["id1", "0.93"]),
    ("$[1,3,0]", ROW, ["5.1", "0.93", "id1"]),
    ("$[0,0]", ROW, ["id1", "id1"]),
    ("$[0,2:]", ROW, ["id1", "3.5", "0.93"]),  # an index list plus one range
    ("$[2:,0]", ROW, ["3.5", "0.93", "id1"]),
    ("$[ 0 , -1 ]", ROW, ["id1", "0.93"]),
    ("$[*]", ROW, ROW),
    ("$.*", ROW, ROW),
    # JSON values
    ("$", DOC, DOC),
    ("$.id", DOC, "a"),
    ("$.features", DOC, [1, 2, 3]),
    ("$.features[0]", DOC, 1),
    ("$.features[1:]", DOC, [2, 3]),
    ("$.meta.y[1]", DOC, None),
    ("$['id']", DOC, "a"),
    ('$["id"]', DOC, "a"),
    ("$['features','id']", DOC, {"features": [1, 2, 3], "id": "a"}),  # in the order named
    ("$.meta['x','y']", DOC, {"x": 1, "y": [True, None]}),
    ("$.meta.*", DOC, [1, [True, None]]),
    ("$[*].id", [{"id": 1}, {"id": 2}], [1, 2]),
    ("$[0:1]['id']", [{"id": 1, "z": 0}, {"id": 2}], [1, 2]),
    ("$.*", {"a": 1, "b": 2}, [1, 2]),
    ("$['']", {"": 5}, 5),
    ("$.SageMakerOutput[0]", {"SageMakerOutput": [0.5, 0.5]}, 0.5),
]


@pytest.mark.parametrize(("expression", "record", "expected"), SELECTED)
def test_select(expression: str, record: Any, expected: Any):
    assert parse_jsonpath(expression).select(record) == expected


RUN_TIME_ERRORS: list[tuple[str, Any, str]] = [
    ("$[4]", ROW, "index 4 is out of range for an array of 4 elements"),
    ("$[-5]", ROW, "index -5 is out of range"),
    ("$[1:][0]", ROW, "an index needs an array, found a string"),
    ("$.id", ROW, "'id' needs an object, found an array"),
    ("$.missing", DOC, "no member 'missing'"),
    ("$['id','nope']", DOC, "no member 'nope'"),
    ("$.id[0]", DOC, "an index needs an array, found a string"),
    ("$.id.*", DOC, "* needs an object or an array, found a string"),
]


@pytest.mark.parametrize(("expression", "record", "reason"), RUN_TIME_ERRORS)
def test_select_errors_say_why(expression: str, record: Any, reason: str):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_jsonpath(expression).select(record)


REJECTED: list[tuple[str, str]] = [
    ("", "must start with \\$"),
    ("features", "must start with \\$"),
    ("$..id", "recursive descent"),
    ("$.", "ends early"),
    ("$[", "ends early"),
    ("$[0", "ends early; expected ']'"),
    ("$[]", "unexpected ']'"),
    ("$[0:2,246:]", "only one range is supported"),
    ("$[1:5:2]", "slice steps"),
    ("$[?(@.x > 1)]", "filter expressions"),
    ("$.length()", "functions such as length\\(\\)"),
    ("$['a.b']", "nested paths inside brackets"),
    ("$['a',0]", "expected a quoted name"),
    ("$[0,'a']", 'unexpected "\'"'),
    ("$['a", "expected a quoted name"),
    ("$id", "unexpected 'i' at position 1"),
    ("$[a]", "unexpected 'a'"),
    ("$" + "[0]" * 21, f"64 characters; the limit is {MAX_LENGTH}"),
]


@pytest.mark.parametrize(("expression", "reason"), REJECTED)
def test_rejected_expressions_name_the_expression_and_reason(expression: str, reason: str):
    with pytest.raises(ValueError, match=f"^Invalid JsonPath: {re.escape(expression)}: .*{reason}"):
        parse_jsonpath(expression)


def test_the_63_character_limit_is_inclusive():
    longest = "$" + ".a" * 31  # 63 characters
    assert len(longest) == MAX_LENGTH
    assert parse_jsonpath(longest).uses_names


@pytest.mark.parametrize(
    ("expression", "uses_names", "is_root"),
    [("$", False, True), ("$[1:]", False, False), ("$.a", True, False), ("$['a']", True, False)],
)
def test_properties_the_service_checks(expression: str, uses_names: bool, is_root: bool):
    path = parse_jsonpath(expression)
    assert (path.uses_names, path.is_root) == (uses_names, is_root)
