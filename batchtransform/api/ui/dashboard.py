"""The dashboard's routes: pages, their JSON views, sign-in, and the vendored static files.

==============================================  ==========================================
``GET /ui/``                                    the jobs (``?status=``, ``?name=``)
``GET /ui/jobs/{name}``                         one job: request, objects, logs, charts
``POST /ui/jobs/{name}/stop``                   stop it (CSRF token required)
``GET /ui/models``, ``/ui/models/{name}``       models, one model and the jobs that ran it
``GET|POST /ui/login``, ``POST /ui/logout``     sign in (form, or a one-time ``?token=``)
``GET /ui/api/jobs[/{name}[/samples|/logs]]``   the JSON the pages refresh themselves from
``GET /ui/static/{file}``                       scripts and styles, never signed
==============================================  ==========================================

Pages without a session redirect to the sign-in form; JSON views answer 401. Without
server credentials (``--no-auth``) the pages are open and say so, and each browser still
gets an anonymous session so that its POSTs carry a CSRF token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, PackageLoader, select_autoescape

from batchtransform.api.protocol import Request, Response
from batchtransform.api.ui import views, web
from batchtransform.api.ui.sessions import CSRF_FIELD, CSRF_HEADER, Session, SessionKeeper
from batchtransform.errors import BatchTransformError, NotFoundError, ValidationError
from batchtransform.jobs import JobStatus
from batchtransform.service import Service

__all__ = ["Dashboard"]

Handler = Callable[[Request, Mapping[str, str]], Response]
# A dashboard handler also gets the browser's session.
_SessionHandler = Callable[[Request, Mapping[str, str], Session], Response]

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_STATUSES = [s.value for s in JobStatus]

logger = logging.getLogger(__name__)


class Dashboard:
    """The web dashboard over one ``Service``; ``credentials`` are the server's own."""

    def __init__(self, service: Service, credentials: Mapping[str, str]) -> None:
        self.service = service
        self.sessions = SessionKeeper(credentials)
        self.templates = Environment(
            loader=PackageLoader("batchtransform.api.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates.filters["segment"] = _quoted

    def install(self, add: Callable[[str, str, Handler], None]) -> None:
        """Add the dashboard's routes with ``add(method, template, handler)`` (a Router's)."""
        add("GET", "/ui", lambda _r, _p: web.redirect("/ui/"))
        add("GET", "/ui/static/{file}", self._static)
        add("GET", "/ui/login", self._login_form)
        add("POST", "/ui/login", self._login)
        add("POST", "/ui/logout", self._post(self._logout))
        add("GET", "/ui/", self._page(self._jobs))
        add("GET", "/ui/jobs/{name}", self._page(self._job))
        add("POST", "/ui/jobs/{name}/stop", self._post(self._stop))
        add("GET", "/ui/models", self._page(self._models))
        add("GET", "/ui/models/{name}", self._page(self._model))
        add("GET", "/ui/api/jobs", self._json(self._jobs_json))
        add("GET", "/ui/api/jobs/{name}", self._json(self._job_json))
        add("GET", "/ui/api/jobs/{name}/samples", self._json(self._samples_json))
        add("GET", "/ui/api/jobs/{name}/logs", self._json(self._logs_json))

    # Guards

    def _session(self, request: Request) -> Session | None:
        return self.sessions.session_of(web.cookie_of(request))

    def _page(self, handler: _SessionHandler) -> Handler:
        """A page: signed-in browsers only (others go to the sign-in form); an unknown job
        or model is a 404 page, a refused filter a 400 page."""

        def guarded(request: Request, parameters: Mapping[str, str]) -> Response:
            session, new = self._session(request), None
            if session is None and not self.sessions.open:
                return web.redirect(web.login_location(request))
            if session is None:
                session = new = self.sessions.new_session()
            try:
                response = handler(request, _decoded(parameters), session)
            except NotFoundError as exc:
                response = self._render("not_found.html", session, 404, message=str(exc))
            except ValidationError as exc:  # a filter the API refuses, named in the message
                response = self._render("error.html", session, 400, message=str(exc))
            if new is not None:
                response.headers["Set-Cookie"] = web.session_cookie(self.sessions.cookie_value(new))
            return response

        return guarded

    def _json(self, handler: Callable[[Request, Mapping[str, str]], Any]) -> Handler:
        """A JSON view: 401 without a session, 404 for an unknown job, 400 for bad input."""

        def guarded(request: Request, parameters: Mapping[str, str]) -> Response:
            if self._session(request) is None and not self.sessions.open:
                return web.json_view({"error": "Sign in first."}, 401)
            try:
                return web.json_view(handler(request, _decoded(parameters)))
            except NotFoundError as exc:
                return web.json_view({"error": str(exc)}, 404)
            except ValidationError as exc:
                return web.json_view({"error": str(exc)}, 400)

        return guarded

    def _post(self, handler: _SessionHandler) -> Handler:
        """A state-changing action: a session and its CSRF token, or 403."""

        def guarded(request: Request, parameters: Mapping[str, str]) -> Response:
            session = self._session(request)
            sent = web.form_of(request).get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
            if session is None or not self.sessions.csrf_matches(session, sent):
                return web.html_response(
                    self._render_text("error.html", None, message=_FORBIDDEN), 403
                )
            return handler(request, _decoded(parameters), session)

        return guarded

    # Sign-in

    def _login_form(self, request: Request, _: Mapping[str, str]) -> Response:
        query = web.query_of(request)
        if "token" in query:
            session = self.sessions.redeem_login_token(query["token"])
            if session is not None:
                return self._signed_in(session, query.get("next"))
            return self._login_page(query.get("next"), "This sign-in link was used or is wrong.")
        return self._login_page(query.get("next"))

    def _login(self, request: Request, _: Mapping[str, str]) -> Response:
        form = web.form_of(request)
        session = self.sessions.sign_in(
            form.get("access_key_id", ""), form.get("secret_access_key", "")
        )
        if session is None:
            return self._login_page(form.get("next"), "Sign-in failed: check both keys.", 401)
        return self._signed_in(session, form.get("next"))

    def _signed_in(self, session: Session, target: str | None) -> Response:
        cookie = web.session_cookie(self.sessions.cookie_value(session))
        return web.redirect(web.safe_next(target), {"Set-Cookie": cookie})

    def _login_page(self, target: str | None, error: str = "", status: int = 200) -> Response:
        if self.sessions.open:
            return web.redirect(web.safe_next(target))
        return self._render("login.html", None, status, next=web.safe_next(target), error=error)

    def _logout(self, _r: Request, _p: Mapping[str, str], _s: Session) -> Response:
        return web.redirect("/ui/login", {"Set-Cookie": web.expired_cookie()})

    # Pages

    def _jobs(self, request: Request, _: Mapping[str, str], session: Session) -> Response:
        status, name = _filters(request)
        rows = views.list_jobs(self.service, status, name)
        return self._render(
            "jobs.html",
            session,
            rows=rows,
            status_filter=status,
            name=name,
            statuses=_STATUSES,
            max_listed=views.MAX_LISTED,
        )

    def _job(self, _r: Request, parameters: Mapping[str, str], session: Session) -> Response:
        detail = views.job_detail(self.service, parameters["name"])
        return self._render("job.html", session, job=detail, request_json=_pretty(detail))

    def _stop(self, _r: Request, parameters: Mapping[str, str], _s: Session) -> Response:
        name = parameters["name"]
        try:
            self.service.call("StopTransformJob", {"TransformJobName": name})
        except BatchTransformError as exc:
            logger.info("the dashboard could not stop %s: %s", name, exc)
        return web.redirect(f"/ui/jobs/{_quoted(name)}")

    def _models(self, _r: Request, _p: Mapping[str, str], session: Session) -> Response:
        return self._render("models.html", session, models=views.list_models(self.service))

    def _model(self, _r: Request, parameters: Mapping[str, str], session: Session) -> Response:
        model = views.model_detail(self.service, parameters["name"])
        return self._render("model.html", session, model=model)

    # JSON views

    def _jobs_json(self, request: Request, _: Mapping[str, str]) -> Any:
        return views.list_jobs(self.service, *_filters(request))

    def _job_json(self, _r: Request, parameters: Mapping[str, str]) -> Any:
        detail = views.job_detail(self.service, parameters["name"])
        return {key: value for key, value in detail.items() if key != "request"}

    def _samples_json(self, request: Request, parameters: Mapping[str, str]) -> Any:
        return views.samples(self.service, parameters["name"])

    def _logs_json(self, request: Request, parameters: Mapping[str, str]) -> Any:
        """The job's streams; with ``?stream=``, a page of that stream (see views)."""
        query = web.query_of(request)
        if "stream" not in query:
            return {"streams": views.log_streams(self.service, parameters["name"])}
        return views.log_events(
            self.service, parameters["name"], query["stream"], query.get("token", "")
        )

    # Rendering

    def _static(self, _r: Request, parameters: Mapping[str, str]) -> Response:
        name = parameters["file"]
        kind = _STATIC_TYPES.get(name[name.rfind(".") :]) if "." in name else None
        folder = resources.files("batchtransform.api.ui") / "static"
        if kind is None or not name.replace(".", "").replace("-", "").isalnum():
            return web.json_view({"error": "No such file."}, 404)
        path = folder / name
        if not path.is_file():
            return web.json_view({"error": "No such file."}, 404)
        return web.static_response(path.read_bytes(), kind)

    def _render(
        self, template: str, session: Session | None, status: int = 200, **context: Any
    ) -> Response:
        return web.html_response(self._render_text(template, session, **context), status)

    def _render_text(self, template: str, session: Session | None, **context: Any) -> str:
        return self.templates.get_template(template).render(
            open=self.sessions.open,
            signed_in=session is not None and not self.sessions.open,
            csrf=session.csrf if session else "",
            **context,
        )


_FORBIDDEN = "This action needs a valid session and its CSRF token; reload the page and retry."


def _filters(request: Request) -> tuple[str, str]:
    """The jobs list's status and name filters; a status that is none is no filter."""
    query = web.query_of(request)
    status = query.get("status", "")
    return (status if status in _STATUSES else ""), query.get("name", "")


def _decoded(parameters: Mapping[str, str]) -> dict[str, str]:
    """Path parameters as the user named them (the router matches them still encoded)."""
    return {key: unquote(value) for key, value in parameters.items()}


def _quoted(name: str) -> str:
    return quote(name, safe="")


def _pretty(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail["request"], indent=2, sort_keys=True, default=str)
