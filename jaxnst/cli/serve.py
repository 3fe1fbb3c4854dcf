"""``jaxnst serve``: the local web page (``jaxnst.web``), on 127.0.0.1 unless ``--host`` opens it."""

from __future__ import annotations

import errno
import ipaddress
import secrets
import signal
import socket
import threading
from pathlib import Path

from jaxnst.cli.common import (
    Parser,
    add_weights_flag,
    check_writable,
    device_name,
    enable_compilation_cache,
    say,
    weights_from_args,
)
from jaxnst.cli.stylize import stop_requests
from jaxnst.config import Config
from jaxnst.errors import JaxnstError


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def web_extra(what: str):
    """``(uvicorn, jaxnst.web.app.make_app)``, or a ``JaxnstError`` saying how to install them."""
    try:
        import uvicorn

        from jaxnst.web.app import make_app
    except ImportError as e:
        raise JaxnstError(f'{what} needs the web extra ({e.name} is missing): pip install "jaxnst[web]"') from None
    return uvicorn, make_app


def check_host(host: str) -> None:
    """A ``JaxnstError`` unless ``host`` is an IP address or a name that resolves (no address is looked up
    for what looks like one: ``256.1.1.1``)."""
    looks_numeric = ":" in host or host.replace(".", "").isdigit()
    try:
        ipaddress.ip_address(host) if looks_numeric else socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (ValueError, OSError, UnicodeError):
        raise JaxnstError(f"--host {host} is not a valid address: give an IP address of this machine, "
                          "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every address)") from None  # fmt: skip


def check_port(host: str, port: int, flag: str) -> None:
    """A ``JaxnstError`` naming ``flag`` unless ``host:port`` can be listened on (naming ``--host`` when
    ``host`` is no address of this machine)."""
    if not 0 < port < 65536:
        raise JaxnstError(f"{flag} {port} must be between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise JaxnstError(f"--host {host} is not an address of this machine ({e.strerror}): give one of "
                                  "its addresses, e.g. 127.0.0.1 or 0.0.0.0") from None  # fmt: skip
            raise JaxnstError(f"cannot listen on {host}:{port} ({e.strerror}): give another {flag}") from None


def page_url(host: str, port: int, token: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/?token={token}"


def main(argv: list[str]) -> int:
    p = Parser(prog="jaxnst serve", description="A local web page: upload images, start runs, watch them paint.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    p.add_argument("--runs", default=None, metavar="DIR", help="where runs and results are kept (default: "
                   "$JAXNST_HOME/runs); a restarted server lists the finished ones, runs the queued ones")  # fmt: skip
    p.add_argument("--model", default=Config.model, choices=("vgg19", "vgg16"), help="VGG architecture")
    p.add_argument("--quiet", action="store_true", help="print only errors and the address")
    add_weights_flag(p)
    args = p.parse_args(argv)
    uvicorn, make_app = web_extra("jaxnst serve")
    from jaxnst.web.app import LOOPBACK
    from jaxnst.web.runs import Runner, run_folder_default

    # Before the weights load: the address, the port, the folder.
    check_host(args.host)
    check_port(args.host, args.port, "--port")
    folder = Path(args.runs) if args.runs else run_folder_default()
    if folder.exists() and not folder.is_dir():
        raise JaxnstError(f"--runs {folder} is a file, not a folder: give a folder for the runs")
    check_writable(folder, "--runs", create=True)
    if not is_loopback(args.host):
        say(f"warning: --host {args.host} lets other machines reach this page: whoever has its address with the "
            "token can run jobs on this computer, and plain HTTP shows the token to the network")  # fmt: skip
    enable_compilation_cache()
    cfg = Config(model=args.model)
    weights = weights_from_args(args, cfg)
    runner = Runner(folder, weights, device_name(), args.weights)
    token = secrets.token_urlsafe()
    # A browser names a loopback server by a loopback name; one on another address by that address,
    # and one on every address by any of the machine's names.
    hosts = LOOPBACK if is_loopback(args.host) else None if args.host in ("0.0.0.0", "::") else (*LOOPBACK, args.host)
    app = make_app(runner, hosts, token)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           timeout_graceful_shutdown=5))  # fmt: skip
    # The server runs in a thread (uvicorn then leaves the signals alone); the main thread takes them: the run
    # being painted stops at the end of its block and keeps its image, the waiting runs stay queued.
    with stop_requests() as got:
        thread = threading.Thread(target=server.run, name="jaxnst-serve", daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            thread.join(0.05)
        if not server.started and not got:
            raise JaxnstError(f"cannot listen on {args.host}:{args.port}: give another --port")
        say(f"open {page_url(args.host, args.port, token)} (runs kept in {runner.folder}; Ctrl-C stops)")
        live: list = []  # the runs not yet ended when the signal came (taken before any of them stops)
        while thread.is_alive():
            thread.join(0.2)
            if got and not server.should_exit:
                live = [r for r in runner.runs.values() if r.status in ("queued", "running")]
                server.should_exit = True
                runner.stopping()
        runner.close()
    if not got:
        raise JaxnstError(f"the server on {args.host}:{args.port} stopped by itself: start it again")
    kept = [f"run {r.id} kept its image at step {r.step}" for r in live if r.status == "stopped"]
    queued = sum(r.status == "queued" for r in runner.runs.values())
    if queued:
        kept.append(f"{queued} queued run{'s' * (queued > 1)} wait for `jaxnst serve --runs {runner.folder}`")
    say(f"stopped by {signal.Signals(got['signum']).name}: {'; '.join(kept) or 'no run was painting or waiting'}")
    return 128 + got["signum"]
