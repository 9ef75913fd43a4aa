"""What handlers may return, as the framework images' serving stacks accept it: bytes, str,
``(body, type)``, werkzeug/Flask responses (real ones, from the installed werkzeug and Flask)
and JSON-able values, compact or indented as each image's server writes them."""

from __future__ import annotations

from typing import Any

import flask
import numpy as np
import pytest
import werkzeug

from batchtransform.errors import ModelError
from batchtransform.runtimes.responses import TOOLKIT_JSON_INDENT, response_body

RESULTS = [
    ("bytes", b"1\n2\n", None, (b"1\n2\n", None)),
    ("str as UTF-8", "é", None, ("é".encode(), None)),
    ("bytearray", bytearray(b"ab"), None, (b"ab", None)),
    ("tuple with a type", (b"1,2", "text/csv"), None, (b"1,2", "text/csv")),
    ("tuple of str", ("x", "text/plain"), None, (b"x", "text/plain")),
    ("compact dict", {"a": [1, 2]}, None, (b'{"a": [1, 2]}', None)),
    ("compact dict in a tuple", ({"a": 1}, "application/json"), None, (b'{"a": 1}', "application/json")),
    ("indented dict", {"a": 1}, TOOLKIT_JSON_INDENT, (b'{\n  "a": 1\n}', None)),
    ("numpy array compact", np.array([[1, 2]]), None, (b"[[1, 2]]", None)),
    ("numpy inside a list", [np.float32(0.5)], None, (b"[0.5]", None)),
    ("werkzeug response", werkzeug.Response("1\n", mimetype="text/csv"), None, (b"1\n", "text/csv")),
    ("flask response, default type", flask.Response(b"{}"), None, (b"{}", "text/html")),
    ("flask response from an iterable", flask.Response(["a", "b"], mimetype="text/plain"), None, (b"ab", "text/plain")),
    ("response in a tuple: the tuple's type wins", (werkzeug.Response("x", mimetype="text/csv"), "text/plain"), None, (b"x", "text/plain")),
    ("201 is a success", werkzeug.Response("ok", status=201, mimetype="text/plain"), None, (b"ok", "text/plain")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("result", "indent", "expected"), [c[1:] for c in RESULTS], ids=[c[0] for c in RESULTS]
)
def test_response_body(result: Any, indent: int | None, expected: tuple[bytes, str | None]) -> None:
    assert response_body(result, indent) == expected


ERRORS = [
    ("client error", werkzeug.Response("bad row 3", status=400), 400, "status 400: bad row 3"),
    ("server error", flask.Response(b"boom", status=503), 503, "status 503: boom"),
    ("a redirect is no answer", werkzeug.Response("", status=302), 500, "status 302"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("result", "status", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_a_response_with_an_error_status_is_the_models_error(
    result: Any, status: int, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        response_body(result, None)
    assert caught.value.model_status == status


def test_a_value_json_cannot_hold_is_a_500() -> None:
    with pytest.raises(ModelError, match="returned a set, not bytes or str") as caught:
        response_body({1, 2}, None)
    assert caught.value.model_status == 500
