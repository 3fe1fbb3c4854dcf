"""`jaxnst serve` as a user runs it: its checks before the weights load, the token it prints, what a signal
keeps (real processes); and a live server's memory under an oversize upload and a burst of submissions."""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from loopback import free_port  # noqa: E402
from test_web import multipart  # noqa: E402

from jaxnst.cli import main  # noqa: E402
from jaxnst.web.app import make_app  # noqa: E402
from jaxnst.web.runs import Runner  # noqa: E402

FAST = {"size": "32", "min_size": "none", "style_statistic": "gram"}


def png(rng, h=24, w=32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def request(url, data=None, headers=None):
    """(status, headers, JSON or text) of a request; an HTTP error is an answer too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            status, head, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, head, body = e.code, e.headers, e.read()
    return status, head, json.loads(body) if head.get("content-type") == "application/json" else body.decode()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--host", "256.1.1.1"], "--host 256.1.1.1 is not a valid address: give an IP address of this machine"),
        (["--host", "192.0.2.1"], "--host 192.0.2.1 is not an address of this machine"),  # TEST-NET-1: not ours
        (["--port", "0"], "--port 0 must be between 1 and 65535"),
        (["--runs", "{file}"], "--runs {file} is a file, not a folder: give a folder for the runs"),
        (["--runs", "{file}/runs"], "--runs {file}/runs: cannot create it"),
    ],
)
def test_serve_checks_its_flags_before_the_weights_load(tmp_path, capsys, argv, message):
    file = tmp_path / "file.txt"
    file.write_text("a file")
    argv = [a.replace("{file}", str(file)) for a in argv]
    # A weight file that does not exist: its error would come first if the weights were read first.
    assert main(["serve", "--port", str(free_port()), "--weights", str(tmp_path / "missing.h5"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.replace("{file}", str(file)) in err, err
    assert "Traceback" not in err and file.read_text() == "a file"


@pytest.fixture(scope="module")
def weight_file(vgg19, tmp_path_factory) -> Path:
    """The session's random weights as a file: it loads in a second, where ``--weights random`` takes many."""
    import jaxnst

    path = tmp_path_factory.mktemp("weights") / "random.h5"
    jaxnst.save_weights(vgg19, path)
    return path


def serve(tmp_path, weights):
    """A `jaxnst serve` process on ``weights``, once it has printed its address: (process, url, port)."""
    port = free_port()
    cmd = [sys.executable, "-m", "jaxnst", "serve", "--weights", str(weights), "--port", str(port),
           "--runs", str(tmp_path / "runs")]  # fmt: skip
    env = {**os.environ, "JAXNST_COMPILATION_CACHE": "0"}
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stderr:
        if m := re.match(rf"jaxnst: open (http://127\.0\.0\.1:{port}/\?token=[\w-]{{40,}}) \(runs kept in ", line):
            return p, m[1], port
    p.kill()
    pytest.fail(f"no address printed: {p.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_serve_prints_its_token_and_stops_on_a_signal(tmp_path, weight_file, sig):
    p, url, port = serve(tmp_path, weight_file)
    try:
        status, _, body = request(f"http://127.0.0.1:{port}/")
        assert status == 403 and "open the address with ?token= that `jaxnst serve` printed" in body["error"]
        status, head, body = request(url)
        assert status == 200 and "<form" in body and "HttpOnly" in head["set-cookie"]
        p.send_signal(sig)
        err = p.stderr.read()
        assert p.wait(timeout=60) == 128 + sig, err
        assert err.strip().splitlines()[-1] == f"jaxnst: stopped by {sig.name}: no run was painting or waiting", err
    finally:
        p.kill()


@pytest.mark.slow
def test_a_signal_keeps_the_painted_image_and_the_queued_runs(tmp_path, weight_file, rng):
    """SIGHUP (a closed terminal; uvicorn alone would not stop on it): the run being painted keeps its image as
    its result, the queued one stays queued on disk for the next `jaxnst serve --runs`."""
    p, url, port = serve(tmp_path, weight_file)
    try:
        _, head, _ = request(url)
        cookie = {"cookie": head["set-cookie"].split(";")[0]}
        ids = []
        for steps in ("100000", "3"):
            body, kind = multipart([("content", "c.png", png(rng)), ("styles", "s.png", png(rng))],
                                   {**FAST, "steps": steps})  # fmt: skip
            status, _, run = request(f"http://127.0.0.1:{port}/api/runs", body, {**cookie, "content-type": kind})
            assert status == 201, run
            ids.append(run["id"])
        t = time.monotonic()
        while request(f"http://127.0.0.1:{port}/api/runs/{ids[0]}", headers=cookie)[2]["step"] == 0:
            assert time.monotonic() - t < 120, "the run did not start"
            time.sleep(0.1)
        p.send_signal(signal.SIGHUP)
        err = p.stderr.read()
        assert p.wait(timeout=120) == 129, err
    finally:
        p.kill()
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"jaxnst: stopped by SIGHUP: run {ids[0]} kept its image at step \d+; 1 queued run wait for "
                        rf"`jaxnst serve --runs {re.escape(str(tmp_path / 'runs'))}`", last), err  # fmt: skip
    runs = tmp_path / "runs"
    painted, queued = (json.loads((runs / i / "run.json").read_text()) for i in ids)
    assert painted["status"] == "stopped" and queued["status"] == "queued"
    assert Image.open(runs / ids[0] / "result_0.png").size == (32, 24)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_the_curl_session_of_docs_web_md_drives_a_real_server(tmp_path, weight_file, rng):
    """docs/web.md's block as a script runs it, against `jaxnst serve` (at 32 px for its 256, gram, one scale)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "web.md").read_text()
    (block,) = re.findall(r"```bash\n(.*?)```", text, re.S)
    first, script = block.split("\n", 1)
    assert first.startswith("URL=") and script.count("-F size=256 -F steps=100") == 2
    small = " ".join(f"-F {k}={v}" for k, v in {**FAST, "steps": 3}.items())
    script = script.replace("-F size=256 -F steps=100", small)
    for name in ("photo.jpg", "style.jpg"):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / name)
    p, url, _ = serve(tmp_path, weight_file)
    try:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env={**os.environ, "URL": url},
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        p.kill()
    assert r.returncode == 0, r.stderr
    events = [json.loads(line[6:]) for line in r.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1]["status"] == "done" and events[-1]["step"] == events[-1]["steps"] == 3, events[-1]
    assert json.loads(Image.open(tmp_path / "out.png").text["jaxnst"])["config"]["steps"] == 3
    runs = json.loads(r.stdout[r.stdout.rindex('{"runs"') :])["runs"]  # the last command's answer
    assert [run["sweep"] for run in runs] == [{"style_weight": [0.3, 1.0, 3.0]}, {}]
    assert runs[0]["status"] in ("running", "stopped") and runs[1]["status"] == "done"


@contextlib.contextmanager
def serving(app, port):
    """``app`` under uvicorn on ``port`` of 127.0.0.1, in a thread of this process."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


class PeakRSS(threading.Thread):
    """The highest resident memory of this process (/proc/self/status VmRSS) while running, every 5 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = self.rss(), threading.Event()

    @staticmethod
    def rss() -> int:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024

    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, self.rss())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status (Linux)")
@pytest.mark.slow
def test_the_server_memory_stays_bounded(tmp_path, vgg19, rng, monkeypatch):
    """A 400 MiB upload sent chunked, then 50 submissions of a 3 MiB image (20 queue, 30 are refused: the queue
    is full): the process grows by less than 100 MB. Kept in memory, the upload would be 160 MiB (the cap) and
    the submissions 150 MiB; the server spools uploads to disk and keeps no image of a queued run."""
    monkeypatch.setattr(Runner, "_work", lambda self: None)  # the runs stay queued: nothing computes
    runner = Runner(tmp_path / "runs", vgg19, "cpu (test)")
    image = png(rng, 1000, 1000)  # noise: 3 MiB of PNG
    assert len(image) > 2.8 * 2**20
    body, kind = multipart([("content", "c.png", image), ("styles", "s.png", png(rng))], {**FAST, "steps": "3"})
    port = free_port()
    with serving(make_app(runner), port):
        url = f"http://127.0.0.1:{port}/api/runs"
        assert request(url, body, {"content-type": kind})[0] == 201  # once first: what every request imports
        peak = PeakRSS()
        before = peak.peak
        peak.start()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {kind}\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n".encode())  # fmt: skip
            head = b'--jaxnst-test-boundary\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n\r\n'
            chunk = b"\0" * 2**20
            s.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
            sent = 0
            with contextlib.suppress(OSError):  # the server may close the connection once it said no
                while sent < 400 * 2**20:
                    s.sendall(b"100000\r\n" + chunk + b"\r\n")
                    sent += len(chunk)
                s.sendall(b"0\r\n\r\n")
            reply = b""
            with contextlib.suppress(OSError):
                reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413") or (not reply and sent < 400 * 2**20), (reply, sent)
        answers = [request(url, body, {"content-type": kind}) for _ in range(50)]
        peak.done.set()
        peak.join()
    assert [a[0] for a in answers] == [201] * 19 + [400] * 31  # 20 waiting runs at most (one sent before)
    assert "20 runs are already waiting" in answers[-1][2]["error"]
    assert peak.peak - before < 100 * 2**20, f"grew by {(peak.peak - before) / 2**20:.0f} MiB"
