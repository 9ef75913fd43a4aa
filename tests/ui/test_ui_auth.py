"""The dashboard's access rules over plain HTTP: sign-in, the session cookie, CSRF, the
headers every page carries, and output escaping."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from models import POISON_HANDLER

from batchtransform.api.ui.sessions import COOKIE_NAME, Session, SessionKeeper
from batchtransform.jobs import JobStatus

PAGES = ["/ui/", "/ui/jobs/job-1", "/ui/models", "/ui/models/m1"]
JSON_VIEWS = ["/ui/api/jobs", "/ui/api/jobs/job-1", "/ui/api/jobs/job-1/samples"]


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={value}"}


def session_cookie(response: httpx.Response) -> str:
    return str(response.cookies[COOKIE_NAME])


def csrf_of(page: httpx.Response) -> str:
    marker = '<meta name="csrf-token" content="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_to_the_sign_in_form(
    http: httpx.Client, path: str
) -> None:
    response = http.get(path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/ui/login?next=")
    form = http.get(response.headers["Location"])
    assert form.status_code == 200
    assert 'name="secret_access_key"' in form.text


@pytest.mark.parametrize("path", JSON_VIEWS)
def test_a_json_view_without_a_session_is_401(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 401
    assert response.json() == {"error": "Sign in first."}


def test_static_files_need_no_session(http: httpx.Client) -> None:
    script = http.get("/ui/static/dashboard.js")
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert http.get("/ui/static/dashboard.css").headers["Content-Type"].startswith("text/css")
    assert http.get("/ui/static/missing.js").status_code == 404
    assert http.get("/ui/static/..%2Fsessions.py").status_code == 404


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("AKIDDASHBOARDTEST", "wrong-secret"),
        ("AKIDWRONG", "dashboard-test-secret"),
        ("", ""),
        ("AKIDDASHBOARDTEST", "dashboard-test-secre"),
    ],
)
def test_a_wrong_sign_in_shows_the_form_again_with_a_generic_error(
    http: httpx.Client, key: str, secret: str
) -> None:
    response = http.post("/ui/login", data={"access_key_id": key, "secret_access_key": secret})
    assert response.status_code == 401
    assert "Sign-in failed: check both keys." in response.text
    assert 'name="access_key_id"' in response.text
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")


def test_a_right_sign_in_sets_a_strict_http_only_cookie_and_opens_the_pages(
    dashboard: Any, http: httpx.Client
) -> None:
    response = http.post(
        "/ui/login",
        data={
            "access_key_id": dashboard.access_key,
            "secret_access_key": dashboard.secret_key,
            "next": "/ui/models",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/models"
    cookie = response.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"):
        assert attribute in cookie
    page = http.get("/ui/models")
    assert page.status_code == 200
    assert "<h1>Models</h1>" in page.text
    assert http.get("/ui/api/jobs").json() == []


def test_pages_carry_the_security_headers(dashboard: Any, http: httpx.Client) -> None:
    dashboard.sign_in(http)
    for response in (http.get("/ui/"), http.get("/ui/api/jobs"), http.get("/ui/login")):
        headers = response.headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"


def test_sign_in_only_returns_to_dashboard_pages(dashboard: Any, http: httpx.Client) -> None:
    for target in ("https://example.com/", "//example.com/ui/", "/metrics"):
        response = http.post(
            "/ui/login",
            data={
                "access_key_id": dashboard.access_key,
                "secret_access_key": dashboard.secret_key,
                "next": target,
            },
        )
        assert response.headers["Location"] == "/ui/"


def tampered(value: str) -> str:
    """The cookie with its payload re-encoded to live for ten more years, unsigned again."""
    encoded, signature = value.rsplit(".", 1)
    fields = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    fields["e"] += 10 * 365 * 86400
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    return f"{forged}.{signature}"


def test_a_forged_tampered_expired_or_foreign_cookie_is_no_session(
    dashboard: Any, http: httpx.Client
) -> None:
    good = session_cookie(dashboard.sign_in(http))
    http.cookies.clear()
    keeper = dashboard.server.dashboard.sessions
    expired = keeper.cookie_value(Session(dashboard.access_key, time.time() - 1, "x"))
    foreign = SessionKeeper({dashboard.access_key: dashboard.secret_key})
    for value in (
        "not-a-cookie",
        "e30.0000",
        tampered(good),
        good[:-1] + ("0" if good[-1] != "0" else "1"),
        expired,
        foreign.cookie_value(foreign.new_session(dashboard.access_key)),
    ):
        assert http.get("/ui/", headers=cookie_header(value)).status_code == 303, value
        assert http.get("/ui/api/jobs", headers=cookie_header(value)).status_code == 401
    assert http.get("/ui/", headers=cookie_header(good)).status_code == 200


def test_a_post_needs_the_session_csrf_token(dashboard: Any, http: httpx.Client) -> None:
    dashboard.add_record("job-1")
    dashboard.sign_in(http)
    token = csrf_of(http.get("/ui/jobs/job-1"))
    assert http.post("/ui/jobs/job-1/stop").status_code == 403
    assert http.post("/ui/jobs/job-1/stop", data={"csrf": "guess"}).status_code == 403
    assert http.post("/ui/logout").status_code == 403
    assert dashboard.store.get_job("job-1").status == JobStatus.IN_PROGRESS.value
    stopped = http.post("/ui/jobs/job-1/stop", headers={"X-CSRF-Token": token})
    assert stopped.status_code == 303
    assert stopped.headers["Location"] == "/ui/jobs/job-1"
    assert dashboard.store.get_job("job-1").status == JobStatus.STOPPING.value


def test_a_csrf_token_belongs_to_its_session(dashboard: Any, http: httpx.Client) -> None:
    dashboard.add_record("job-1")
    dashboard.sign_in(http)
    token = csrf_of(http.get("/ui/"))
    http.cookies.clear()
    dashboard.sign_in(http)  # a second session: the first one's token is not its own
    assert http.post("/ui/jobs/job-1/stop", data={"csrf": token}).status_code == 403


def test_sign_out_ends_the_session(dashboard: Any, http: httpx.Client) -> None:
    dashboard.sign_in(http)
    token = csrf_of(http.get("/ui/"))
    response = http.post("/ui/logout", data={"csrf": token})
    assert response.status_code == 303
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert http.get("/ui/").status_code == 303


def test_a_one_time_sign_in_link_works_once(dashboard: Any, http: httpx.Client) -> None:
    token = dashboard.server.dashboard.sessions.issue_login_token()
    first = http.get(f"/ui/login?token={token}")
    assert first.status_code == 303
    assert COOKIE_NAME in first.headers["Set-Cookie"]
    http.cookies.clear()
    again = http.get(f"/ui/login?token={token}")
    assert again.status_code == 200
    assert "This sign-in link was used or is wrong." in again.text
    assert http.get("/ui/login?token=guess").status_code == 200


def test_html_from_users_is_escaped(dashboard: Any, http: httpx.Client) -> None:
    name = "<img src=x id=injected>"
    reason = "ClientError: <script>alert(1)</script>"
    dashboard.add_record(name, "Failed", reason)
    dashboard.sign_in(http)
    listing = http.get("/ui/").text
    assert "&lt;img src=x id=injected&gt;" in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert" not in listing and "<img src=x" not in listing
    filtered = http.get("/ui/", params={"name": "<b>x"})
    assert filtered.status_code == 400
    assert "&lt;b&gt;x" in filtered.text and "<b>x" not in filtered.text
    missing = http.get("/ui/jobs/%3Cb%3Eghost")
    assert missing.status_code == 404
    assert "&lt;b&gt;ghost" in missing.text and "<b>ghost" not in missing.text


def test_unknown_jobs_and_models_are_404_pages(dashboard: Any, http: httpx.Client) -> None:
    dashboard.sign_in(http)
    job = http.get("/ui/jobs/nothing-here")
    assert job.status_code == 404
    assert "Could not find transform job" in job.text and "nothing-here" in job.text
    model = http.get("/ui/models/no-model")
    assert model.status_code == 404
    assert "Could not find model" in model.text
    assert http.get("/ui/api/jobs/nothing-here").status_code == 404


def test_a_log_read_stays_within_its_job(dashboard: Any, http: httpx.Client) -> None:
    dashboard.add_record("job-1")
    dashboard.sign_in(http)
    assert http.get("/ui/api/jobs/job-1/logs").json() == {"streams": []}
    other = http.get("/ui/api/jobs/job-1/logs", params={"stream": "job-2/instance-1-1"})
    assert other.status_code == 400
    assert "not one of job" in other.json()["error"]


def test_without_authentication_pages_are_open_and_say_so(open_dashboard: Any) -> None:
    open_dashboard.add_record("job-1")
    with httpx.Client(base_url=open_dashboard.url) as client:
        page = client.get("/ui/")
        assert page.status_code == 200
        assert "runs without authentication" in page.text
        assert client.post("/ui/jobs/job-1/stop").status_code == 403  # still CSRF-checked
        token = csrf_of(page)
        assert client.post("/ui/jobs/job-1/stop", data={"csrf": token}).status_code == 303
    assert open_dashboard.store.get_job("job-1").status == JobStatus.STOPPING.value


def test_a_model_page_shows_its_containers_and_jobs_escaped(
    dashboard: Any, http: httpx.Client
) -> None:
    environment = {"GREETING": "<i>hello</i>", "THREADS": "2"}
    dashboard.server.service.call(
        "CreateModel",
        {
            "ModelName": "m1",
            "PrimaryContainer": {
                "Image": "batchtransform/python",
                "ModelDataUrl": "s3://bucket/model.tar.gz",
                "Environment": environment,
            },
        },
    )
    dashboard.add_record("job-1", "Completed")
    dashboard.sign_in(http)
    assert 'href="/ui/models/m1"' in http.get("/ui/models").text
    page = http.get("/ui/models/m1").text
    for shown in (
        "batchtransform/python",
        "s3://bucket/model.tar.gz",
        "THREADS",
        "&lt;i&gt;hello&lt;/i&gt;",
    ):
        assert shown in page
    assert "<i>hello" not in page
    assert 'href="/ui/jobs/job-1"' in page


def test_a_failed_object_shows_its_reason(dashboard: Any, http: httpx.Client) -> None:
    dashboard.start_job("poisoned", files=2, records=3, handler=POISON_HANDLER, poisoned=1)
    dashboard.wait_for_status("poisoned", "Failed", "Completed")
    dashboard.sign_in(http)
    failed = http.get("/ui/api/jobs/poisoned").json()["failures"]
    assert [f["object"] for f in failed] == [f"{dashboard.root}/poisoned/in/part-1.csv"]
    assert "poisoned record" in failed[0]["reason"]
    page = http.get("/ui/jobs/poisoned").text
    assert "poisoned record" in page
    assert "part-0.csv.out" in page  # the other object's committed output
