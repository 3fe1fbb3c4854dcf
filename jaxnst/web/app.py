"""The web page's HTTP side, on Starlette (``pip install "jaxnst[web]"``).

Starlette because it is small, typed and maintained, has multipart uploads, streaming responses for
server-sent events and a test client that needs no browser, and runs under uvicorn with no other
service; the page needs nothing more. Progress goes to the page as server-sent events (one-way, plain
HTTP, reconnecting by themselves), not WebSockets. Routes:

* ``GET /`` the page; ``GET /api/runs`` every run; ``POST /api/runs`` a new one (multipart:
  ``content``, ``styles``, optional ``coarse_styles``, the settings of ``jaxnst.web.runs.SETTINGS``,
  ``sweep_field``/``sweep_values``)
* ``GET /api/runs/{id}`` one run; ``GET /api/runs/{id}/events`` its progress as server-sent events
* ``GET /api/runs/{id}/image/{k}`` the current image ``k``; ``GET /api/runs/{id}/result/{k}`` the PNG
* ``POST /api/runs/{id}/stop``

Files are only ever named by a run id (12 hex digits) and an image number: nothing from a request
becomes a path. Other sites cannot drive the page: a request must name one of the
server's own hosts (``Host``: a DNS-rebinding page names its own), and a request that changes
anything (not GET or HEAD) must come from the page itself (``Origin``, ``Sec-Fetch-Site``: another
site's form or script can post without asking first); ``SameSite`` answers the others 403.
With a ``token`` (``jaxnst serve`` makes one per start, as Jupyter does) every request must also carry
it: ``?token=`` in the address ``jaxnst serve`` prints, which sets an HttpOnly, SameSite=Strict cookie
that the page's own requests carry (and the page takes the token out of the address bar).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from importlib import resources
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from jaxnst.errors import JaxnstError
from jaxnst.web.runs import FINAL, MAX_STYLES, MAX_UPLOAD_BYTES, Runner, settings_html


async def uploads(form, key: str) -> list[tuple[str, bytes]]:
    """The files of the form's field ``key`` as (filename, bytes); a text value there is no file, and neither is
    the nameless empty part a browser sends for a file input left empty (an optional one: coarse styles). A file
    over ``MAX_UPLOAD_BYTES`` is refused before it is read into memory (the parser spooled it to disk)."""
    files = [f for f in form.getlist(key) if hasattr(f, "read")]
    for f in files:
        if (f.size or 0) > MAX_UPLOAD_BYTES:
            raise JaxnstError(f"{f.filename or 'an upload'} is {f.size / 2**20:.0f} MiB: give one of at most "
                              f"{MAX_UPLOAD_BYTES >> 20} MiB")  # fmt: skip
    files = [(f.filename, await f.read()) for f in files]
    return [(name or "upload", data) for name, data in files if name or data]


# A whole request: the content and the styles and coarse styles at their cap would be 360 MiB; no page
# needs that much, and the server reads it before it can say no.
MAX_REQUEST_BYTES = 160 * 2**20


# The names of this machine a browser on it uses for a server on the loopback address.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port: ``127.0.0.1:8765`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refused(method: str, headers: dict[str, str], hosts: tuple[str, ...] | None) -> str | None:
    """Why a request with ``headers`` (lower-case names) may not reach the page served as ``hosts``
    (None: any host, for a server on every address), or None."""
    host = headers.get("host", "")
    if hosts is not None and host_name(host) not in hosts:
        return f"this server answers as {', '.join(hosts)}, not as {host[:80]!r}: open the address jaxnst printed"
    if method not in ("GET", "HEAD"):
        origin, fetch_site = headers.get("origin"), headers.get("sec-fetch-site", "same-origin")
        if (origin is not None and origin != f"http://{host}") or fetch_site not in ("same-origin", "none"):
            return "another site cannot start or stop runs here: use the page itself"
    return None


def cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header: ``a=1; b=2`` -> ``{"a": "1", "b": "2"}``."""
    return dict(p.strip().split("=", 1) for p in header.split(";") if "=" in p)


class SameSite:
    """ASGI middleware: a 403 with the reason for every request ``refused`` names, or (with a ``token``)
    that carries neither the token in its query nor the cookie a request with it set."""

    def __init__(self, app, hosts: tuple[str, ...] | None = LOOPBACK, token: str | None = None):
        self.app, self.hosts, self.token = app, hosts, token

    def is_token(self, value: str) -> bool:
        return secrets.compare_digest(value.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        why = refused(scope["method"], headers, self.hosts)
        if why is None and self.token is not None:
            # Cookies are a host's, whatever its port: the name says which server's token this is.
            name = f"jaxnst-token-{(scope.get('server') or ('', ''))[1]}"
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
            if self.is_token(query):
                send = with_cookie(send, f"{name}={self.token}; HttpOnly; SameSite=Strict; Path=/")
            elif not self.is_token(cookies(headers.get("cookie", "")).get(name, "")):
                why = "this page needs its token: open the address with ?token= that `jaxnst serve` printed"
        if why is not None:
            return await JSONResponse({"error": why}, status_code=403)(scope, receive, send)
        too_large = lambda: JSONResponse({"error": f"the upload is over {MAX_REQUEST_BYTES >> 20} MiB in all: "  # noqa: E731
                                                   "send smaller images"}, status_code=413)  # fmt: skip
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return await too_large()(scope, receive, send)
        seen = 0

        async def counted():  # a body without a length (chunked) is counted as it arrives
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_REQUEST_BYTES:
                raise _TooLarge
            return message

        try:
            return await self.app(scope, counted, send)
        except _TooLarge:
            return await too_large()(scope, receive, send)


def with_cookie(send, cookie: str):
    """``send`` that adds a ``Set-Cookie: cookie`` header to the response."""

    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
        await send(message)

    return sending


class _TooLarge(BaseException):  # not an ``Exception``: the route's handlers must not take it for theirs
    pass


def make_app(runner: Runner, hosts: tuple[str, ...] | None = LOOPBACK, token: str | None = None) -> Starlette:
    """The Starlette app serving ``runner``'s runs to a browser that names the server as one of ``hosts``
    (None: any name, for a server listening on every address) and, unless ``token`` is None, has it."""
    page = resources.files("jaxnst.web").joinpath("page.html").read_text(encoding="utf-8")
    page = page.replace("{{settings}}", settings_html())

    def found(request: Request):
        run = runner.get(request.path_params["run_id"])
        if run is None:
            return None, JSONResponse({"error": "no such run"}, status_code=404)
        return run, None

    async def index(request: Request) -> Response:
        return HTMLResponse(page.replace("{{device}}", runner.device))

    async def list_runs(request: Request) -> Response:
        runs = sorted(list(runner.runs.values()), key=lambda r: r.created, reverse=True)
        return JSONResponse({"runs": [r.summary() for r in runs], "device": runner.device})

    async def create(request: Request) -> Response:
        try:
            # Room for one file too many of each kind: ``submit`` then says how many it takes.
            files = 1 + 2 * (MAX_STYLES + 1)
            async with request.form(max_files=files, max_fields=40, max_part_size=MAX_UPLOAD_BYTES + 1) as form:
                content, styles, coarse = [await uploads(form, k) for k in ("content", "styles", "coarse_styles")]
                if not content:
                    raise JaxnstError("no content image: choose one")
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
            run = await asyncio.to_thread(runner.submit, content[0], styles, fields, coarse)
        except JaxnstError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except Exception as e:  # a malformed or too large multipart body: Starlette says which (never a path)
            detail = getattr(e, "detail", None) or type(e).__name__
            return JSONResponse({"error": f"the upload could not be read: {detail}"}, status_code=400)
        return JSONResponse(run.summary(), status_code=201)

    async def one(request: Request) -> Response:
        run, missing = found(request)
        return missing or JSONResponse(run.summary())

    async def events(request: Request) -> Response:
        run, missing = found(request)
        if missing:
            return missing

        async def stream():
            version = -1
            while True:
                current = await asyncio.to_thread(runner.wait, run.id, version, 10.0)
                if current.version != version:
                    version = current.version
                    yield f"data: {json.dumps(current.summary())}\n\n"
                else:
                    yield ": still here\n\n"  # a comment keeps proxies and the browser from timing out
                if current.status in FINAL or runner.closing.is_set() or await request.is_disconnected():
                    return

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def image_number(request: Request, run) -> int | None:
        try:
            k = int(request.path_params["k"])
        except ValueError:
            return None
        return k if 0 <= k < len(run.labels) else None

    async def image(request: Request) -> Response:
        run, missing = found(request)
        if missing:
            return missing
        k = image_number(request, run)
        if k is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        if k < len(run.images):
            return Response(run.images[k], media_type="image/png", headers={"Cache-Control": "no-store"})
        path = runner.result(run, k)
        if path is None:
            return JSONResponse({"error": "no image yet"}, status_code=404)
        return FileResponse(path, media_type="image/png")

    async def result(request: Request) -> Response:
        run, missing = found(request)
        if missing:
            return missing
        k = image_number(request, run)
        path = None if k is None else runner.result(run, k)
        if path is None:
            return JSONResponse({"error": "no result yet"}, status_code=404)
        label = f"_{run.labels[k]}" if run.labels[k] else ""
        return FileResponse(path, media_type="image/png", filename=f"jaxnst_{run.id}{label}.png")

    async def stop(request: Request) -> Response:
        run, missing = found(request)
        if missing:
            return missing
        runner.stop(run.id)
        return JSONResponse(run.summary())

    return Starlette(
        middleware=[Middleware(SameSite, hosts=hosts, token=token)],
        routes=[
            Route("/", index),
            Route("/api/runs", list_runs, methods=["GET"]),
            Route("/api/runs", create, methods=["POST"]),
            Route("/api/runs/{run_id}", one),
            Route("/api/runs/{run_id}/events", events),
            Route("/api/runs/{run_id}/image/{k}", image),
            Route("/api/runs/{run_id}/result/{k}", result),
            Route("/api/runs/{run_id}/stop", stop, methods=["POST"]),
        ],
    )
