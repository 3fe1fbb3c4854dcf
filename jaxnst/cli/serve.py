"""``jaxnst serve``: the local web page (``jaxnst.web``), on 127.0.0.1 unless ``--host`` opens it."""

from __future__ import annotations

import ipaddress
import socket

from jaxnst.cli.common import Parser, add_weights_flag, device_name, enable_compilation_cache, say, weights_from_args
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


def check_port(host: str, port: int, flag: str) -> None:
    """A ``JaxnstError`` naming ``flag`` unless ``host:port`` can be listened on."""
    if not 0 < port < 65536:
        raise JaxnstError(f"{flag} {port} must be between 1 and 65535")
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise JaxnstError(f"cannot listen on {host}:{port} ({e.strerror}): give another {flag}") from None


def main(argv: list[str]) -> int:
    p = Parser(prog="jaxnst serve", description="A local web page: upload images, start runs, watch them paint.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    p.add_argument("--runs", default=None, metavar="DIR", help="where runs and results are kept (default: "
                   "$JAXNST_HOME/runs); a restarted server lists the finished ones")  # fmt: skip
    p.add_argument("--model", default=Config.model, choices=("vgg19", "vgg16"), help="VGG architecture")
    p.add_argument("--quiet", action="store_true", help="print only errors and the address")
    add_weights_flag(p)
    args = p.parse_args(argv)
    uvicorn, make_app = web_extra("jaxnst serve")
    from jaxnst.web.app import LOOPBACK
    from jaxnst.web.runs import Runner, run_folder_default

    check_port(args.host, args.port, "--port")  # before the weights load
    if not is_loopback(args.host):
        say(f"warning: --host {args.host} lets other machines reach this page and run jobs on this computer; "
            "there is no login")  # fmt: skip
    enable_compilation_cache()
    cfg = Config(model=args.model)
    weights = weights_from_args(args, cfg)
    runner = Runner(args.runs or run_folder_default(), weights, device_name(), args.weights)
    say(f"open http://{args.host}:{args.port}/ (runs kept in {runner.folder}; Ctrl-C stops)")
    # A browser names a loopback server by a loopback name; one on another address by that address,
    # and one on every address by any of the machine's names.
    hosts = LOOPBACK if is_loopback(args.host) else None if args.host in ("0.0.0.0", "::") else (*LOOPBACK, args.host)
    uvicorn.run(make_app(runner, hosts), host=args.host, port=args.port, log_level="warning")
    return 0
