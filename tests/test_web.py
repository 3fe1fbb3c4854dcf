"""The web page's server, through Starlette's test client (no browser): runs, progress, stop, queue,
sweeps, bad uploads, paths, restarts, the token, the memory bound."""

import io
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette.testclient")  # the web extra and httpx2: pip install -e ".[dev]"
from starlette.testclient import TestClient  # noqa: E402

from jaxnst.cli import main  # noqa: E402
from jaxnst.errors import JaxnstError  # noqa: E402
from jaxnst.record import read_record  # noqa: E402
from jaxnst.web.app import make_app  # noqa: E402
from jaxnst.web.runs import FINAL, SETTINGS, SWEEPS, Runner, parse_settings, peak_bytes  # noqa: E402

FAST = {"size": "32", "steps": "3", "min_size": "none", "style_statistic": "gram"}


@pytest.fixture
def server(tmp_path, vgg19):
    runner = Runner(tmp_path / "runs", vgg19, "cpu (test)", weights_path="random")  # the seed's weights: vgg19
    with TestClient(make_app(runner), base_url="http://127.0.0.1:8765") as client:  # as a browser names it
        yield runner, client
    runner.close()


@pytest.fixture
def idle(tmp_path, vgg19, monkeypatch):
    """A runner whose worker starts no run (submissions stay queued), and a client of its app."""
    monkeypatch.setattr(Runner, "_work", lambda self: None)
    runner = Runner(tmp_path / "runs", vgg19, "cpu (test)")
    with TestClient(make_app(runner), base_url="http://127.0.0.1:8765") as client:
        yield runner, client


def png(rng, h=24, w=32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def start(client, rng, **fields):
    files = [("content", ("c.png", png(rng), "image/png")), ("styles", ("s.png", png(rng, 32, 24), "image/png"))]
    return client.post("/api/runs", files=files, data={**FAST, **fields})


def multipart(files, fields) -> tuple[bytes, str]:
    """A form as a browser encodes it (test clients leave out ``filename=""``): (body, content type)."""
    b = "jaxnst-test-boundary"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for key, name, data in files:
        head = f'--{b}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
        parts.append(f"{head}Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def events(client, run_id):
    with client.stream("GET", f"/api/runs/{run_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def wait_for(runner, run_id, ok, timeout=120):
    t = time.monotonic()
    while not ok(runner.get(run_id)):
        assert time.monotonic() - t < timeout, runner.get(run_id).summary()
        time.sleep(0.05)
    return runner.get(run_id)


@pytest.mark.slow
def test_a_run_reports_progress_and_keeps_its_result(server, rng, capsys):
    runner, client = server
    r = start(client, rng)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    seen = events(client, run_id)
    assert seen[-1]["status"] == "done" and seen[-1]["step"] == 3, seen[-1]
    running = [e for e in seen if e["status"] == "running" and e["step"] > 0]
    assert running and [e["step"] for e in running] == sorted(e["step"] for e in running)
    assert seen[-1]["losses"][-1][0] == 3 and "on cpu (test)" in seen[-1]["message"]
    img = client.get(f"/api/runs/{run_id}/image/0")
    assert img.status_code == 200 and Image.open(io.BytesIO(img.content)).size == (32, 24)
    res = client.get(f"/api/runs/{run_id}/result/0")
    assert res.status_code == 200 and "attachment" in res.headers["content-disposition"]
    record = json.loads(Image.open(io.BytesIO(res.content)).text["jaxnst"])
    assert record["config"]["steps"] == 3 and record["config"]["size"] == 32 and record["run"] == run_id
    # The CLI's record (one schema): the uploads' paths, the weights' digest; `jaxnst reproduce` makes it
    # again, as the page's batch program (it once crashed with KeyError: 'content').
    assert read_record(record, "result") == {**record, "command": "serve"} and record["record"] == 2
    assert Path(record["content"]).parent == runner.folder / run_id / "inputs" and len(record["weights_sha256"]) == 64
    (runner.folder / "web.png").write_bytes(res.content)
    code = main(["reproduce", str(runner.folder / "web.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "web_reproduced.png has the same pixels as" in err, err
    again = json.loads(Image.open(runner.folder / "web_reproduced.png").text["jaxnst"])
    assert again["command"] == "serve" and again["config"] == record["config"] and again["run"] == run_id
    assert json.loads((runner.folder / run_id / "run.json").read_text())["status"] == "done"
    assert [r["id"] for r in client.get("/api/runs").json()["runs"]] == [run_id]


@pytest.mark.slow
def test_a_sweep_is_one_batch_of_images_side_by_side(server, rng):
    runner, client = server
    r = start(client, rng, sweep_field="style_weight", sweep_values="1, 1e4")
    assert r.status_code == 201, r.text
    done = events(client, r.json()["id"])[-1]
    assert done["status"] == "done" and done["labels"] == ["style_weight=1", "style_weight=10000"]
    a, b = (np.asarray(Image.open(io.BytesIO(client.get(f"/api/runs/{done['id']}/result/{k}").content)))
            for k in (0, 1))  # fmt: skip
    assert a.shape == b.shape == (24, 32, 3) and not np.array_equal(a, b)
    # `jaxnst reproduce` of one image of a sweep runs the sweep's program again and takes that image.
    (runner.folder / "second.png").write_bytes(client.get(f"/api/runs/{done['id']}/result/1").content)
    assert main(["reproduce", str(runner.folder / "second.png"), "--quiet"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(runner.folder / "second_reproduced.png")), b)


@pytest.mark.slow
def test_stop_keeps_the_image_and_the_queue_goes_on(server, rng):
    runner, client = server
    long = start(client, rng, steps="100000").json()["id"]
    queued = start(client, rng).json()["id"]
    wait_for(runner, long, lambda r: r.step > 0)
    assert client.get(f"/api/runs/{queued}").json()["status"] == "queued"  # one run at a time
    assert client.post(f"/api/runs/{long}/stop").status_code == 200
    stopped = wait_for(runner, long, lambda r: r.status == "stopped")
    assert 0 < stopped.step < 100000 and client.get(f"/api/runs/{long}/result/0").status_code == 200
    assert events(client, queued)[-1]["status"] == "done"


@pytest.mark.parametrize(
    "content, fields, message",
    [
        (b"not an image at all", {}, "the content image (c.png)"),
        (b"", {}, "the content image (c.png) is empty"),
        (None, {"size": "abc"}, "size 'abc' is not a whole number"),
        (None, {"size": "8"}, "size 8 is too small"),
        (None, {"sweep_field": "lr", "sweep_values": "1,2"}, "cannot sweep lr"),
        (None, {"sweep_field": "style_weight", "sweep_values": "1"}, "give two or three sweep values"),
    ],
)
def test_bad_uploads_and_settings_are_refused_with_a_message(server, rng, content, fields, message):
    runner, client = server
    files = [("content", ("c.png", png(rng) if content is None else content, "image/png")),
             ("styles", ("s.png", png(rng), "image/png"))]  # fmt: skip
    r = client.post("/api/runs", files=files, data={**FAST, **fields})
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert str(runner.folder.parent) not in r.text and "inputs" not in r.text and "content0" not in r.text, r.text
    assert list(runner.folder.iterdir()) == []  # nothing left of the rejected run


@pytest.mark.slow
def test_a_coarse_style_changes_the_result_and_is_recorded(server, rng):
    """An optional coarse-style upload, split at relu1_1 (the layers after it from the coarse style): the run
    finishes, its image differs from the same run without it, and its record names the upload."""
    runner, client = server
    content, style, coarse = png(rng), png(rng, 32, 24), png(rng, 28, 28)
    results = {}
    # "plain" sends what a browser sends for a file input left empty: a part with filename="" and no bytes.
    for name, extra in (("plain", [("coarse_styles", "", b"")]), ("coarse", [("coarse_styles", "b.png", coarse)])):
        files = [("content", "c.png", content), ("styles", "s.png", style), *extra]
        body, kind = multipart(files, {**FAST, "style_weight": "1e4", "split_layer": "relu1_1"})
        r = client.post("/api/runs", content=body, headers={"content-type": kind})
        assert r.status_code == 201, r.text
        done = events(client, r.json()["id"])[-1]
        assert done["status"] == "done" and done["coarse"] == (name == "coarse"), done
        res = client.get(f"/api/runs/{done['id']}/result/0")
        results[name] = (np.asarray(Image.open(io.BytesIO(res.content)), int),
                         json.loads(Image.open(io.BytesIO(res.content)).text["jaxnst"]))  # fmt: skip
    (plain, plain_record), (image, record) = results["plain"], results["coarse"]
    assert np.abs(image - plain).max() > 2 and record["config"]["split_layer"] == "relu1_1"
    upload = runner.folder / record["run"] / "inputs" / "coarse1"
    assert record["style_coarse"] == [str(upload.resolve())] and upload.read_bytes() == coarse
    assert read_record(record, "result") == {**record, "command": "serve"} and "style_coarse" not in plain_record


@pytest.mark.parametrize(
    "coarse, message",
    [
        ([b"not an image"], "coarse style image 1 (b.png): "),
        ([None, b""], "coarse style image 2 (b.png) is empty"),
        ([None] * 5, "5 coarse style images: give at most 4"),
    ],
)
def test_a_bad_coarse_upload_is_one_error_and_nothing_is_kept(server, rng, coarse, message):
    runner, client = server
    files = [("content", ("c.png", png(rng), "image/png")), ("styles", ("s.png", png(rng), "image/png"))]
    files += [("coarse_styles", ("b.png", png(rng) if c is None else c, "image/png")) for c in coarse]
    r = client.post("/api/runs", files=files, data=FAST)
    assert r.status_code == 400 and message in r.json()["error"] and "\n" not in r.json()["error"], r.text
    assert list(runner.folder.iterdir()) == [] and runner.runs == {}


def test_the_page_offers_exactly_the_generated_settings(server):
    """The form's inputs are ``SETTINGS`` (from ``Config``'s metadata), each starting at its default (or its
    ``page_value``), menus with every choice; the sweep menu is ``SWEEPS``, and its error names them."""
    import dataclasses
    from html.parser import HTMLParser

    from jaxnst.config import Config

    class Form(HTMLParser):
        def __init__(self):
            super().__init__()
            self.boxes, self.options, self.select = {}, {}, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag in ("input", "select"):
                self.boxes[a["name"]] = a.get("value")
                self.select = a["name"] if tag == "select" else None
            elif tag == "option":
                self.options.setdefault(self.select, []).append(a["value"])
                if "selected" in a:
                    self.boxes[self.select] = a["value"]

    runner, client = server
    form = Form()
    form.feed(client.get("/").text)
    assert set(form.boxes) == {"content", "styles", "coarse_styles", *SETTINGS, "sweep_field", "sweep_values"}
    assert "split_layer" in SETTINGS  # with coarse styles, where they start
    assert form.options.pop("sweep_field") == ["", *SWEEPS]
    for f in dataclasses.fields(Config):
        if f.name in SETTINGS:
            start = f.default if f.metadata["page_value"] is None else f.metadata["page_value"]
            assert parse_settings({f.name: form.boxes[f.name]})[0] == {f.name: start}, f.name
    assert form.options == {"style_statistic": ["gram", "w2", "mean_std"],
                            "preserve_color": ["none", "luminance", "histogram", "post"]}  # fmt: skip
    assert parse_settings({"sweep_field": "initial_steps", "sweep_values": "none 2"})[1] == {"initial_steps": [None, 2]}
    with pytest.raises(JaxnstError, match=f"cannot sweep lr: sweep one of {', '.join(SWEEPS)}$"):
        parse_settings({"sweep_field": "lr", "sweep_values": "1,2"})


def test_a_decompression_bomb_is_refused(server, rng, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 24x32 upload is then a "bomb"
    runner, client = server
    r = start(client, rng)
    assert r.status_code == 400 and "the content image (c.png): image c.png is too large" in r.json()["error"], r.text
    assert str(runner.folder) not in r.text, r.text  # the upload's name, never the server's path


@pytest.mark.slow
def test_no_request_names_a_file_outside_the_runs(server, rng):
    runner, client = server
    (runner.folder.parent / "secret.txt").write_text("secret")
    run_id = start(client, rng).json()["id"]
    events(client, run_id)
    for url in [
        "/api/runs/..%2Fsecret.txt/result/0",
        "/api/runs/../secret.txt",
        f"/api/runs/{run_id}/result/..%2F..%2Fsecret.txt",
        f"/api/runs/{run_id}/result/-1",
        f"/api/runs/{run_id}/result/1",
        f"/api/runs/{run_id}/image/0x0",
        "/api/runs/0123456789ab/result/0",
        "/api/runs/" + "a" * 12 + "/events",
    ]:
        r = client.get(url)
        assert r.status_code == 404 and b"secret" not in r.content, url


@pytest.mark.slow
def test_a_restarted_server_keeps_finished_runs(tmp_path, vgg19, rng):
    runner = Runner(tmp_path / "runs", vgg19)
    with TestClient(make_app(runner), base_url="http://127.0.0.1:8765") as client:  # as a browser names it
        run_id = start(client, rng).json()["id"]
        assert events(client, run_id)[-1]["status"] == "done"
    runner.close()
    (tmp_path / "runs" / "0123456789ab").mkdir()
    (tmp_path / "runs" / "0123456789ab" / "run.json").write_text(
        json.dumps({"id": "0123456789ab", "status": "running"})
    )
    again = Runner(tmp_path / "runs", vgg19)
    with TestClient(make_app(again), base_url="http://127.0.0.1:8765") as client:
        runs = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
        assert runs[run_id]["status"] == "done" and runs["0123456789ab"]["status"] == "interrupted"
        assert client.get(f"/api/runs/{run_id}/result/0").status_code == 200
        assert client.get(f"/api/runs/{run_id}/image/0").status_code == 200
    again.close()


@pytest.mark.slow
def test_the_main_command_shows_its_run_on_a_page(images_dir, tmp_path, capsys, monkeypatch):
    """--web: the CLI's run on a local page; the page refuses other runs (that is `jaxnst serve`); its folder
    goes when the process ends."""
    import atexit
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out.png"
    argv = [images_dir / "coffee.png", images_dir / "the_scream.jpg", "--weights", "random", "--size", "32",
            "--min-size", "none", "--steps", "4", "--style-layers", "relu1_1", "--content-layers", "relu1_1",
            "-o", out, "--web", port]  # fmt: skip
    at_exit = []
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: at_exit.append((f, a, k)))
    assert main([str(a) for a in argv]) == 0 and out.exists()
    err = capsys.readouterr().err
    (token,) = re.findall(rf"watch it paint at http://127.0.0.1:{port}/\?token=(\S+) ", err)
    assert re.search(r"(^|\n)jaxnst: watch it paint at ", err), err  # its own line, not after the bar
    base = f"http://127.0.0.1:{port}/api/runs"
    with pytest.raises(urllib.error.HTTPError) as e:  # the page needs the printed address, as serve's
        urllib.request.urlopen(base, timeout=10)
    assert e.value.code == 403
    base += f"?token={token}"  # the server outlives main() here
    (run,) = json.loads(urllib.request.urlopen(base, timeout=10).read())["runs"]
    assert run["status"] == "done" and run["step"] == run["steps"] == 4 and str(out) in run["message"]
    result = urllib.request.urlopen(base.replace("?", f"/{run['id']}/result/0?"), timeout=10).read()
    assert Image.open(io.BytesIO(result)).size == Image.open(out).size
    form = urllib.request.Request(base, data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(form, timeout=10)
    assert e.value.code == 400
    ((f, a, k),) = [c for c in at_exit if c[0] is shutil.rmtree]  # the process's end: the page's folder goes
    folder = Path(a[0])
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("jaxnst-web-")
    assert any(folder.iterdir())
    f(*a, **k)
    assert not folder.exists()


@pytest.mark.parametrize(
    "method, path, headers",
    [
        ("GET", "/api/runs", {"host": "evil.example"}),  # a DNS-rebinding page reads the runs list
        ("GET", "/", {"host": "evil.example:8765"}),
        ("POST", "/api/runs", {"origin": "http://evil.example"}),  # another site's form or fetch
        ("POST", "/api/runs", {"origin": "null"}),  # a sandboxed frame
        ("POST", "/api/runs", {"sec-fetch-site": "cross-site"}),
        ("POST", "/api/runs", {"origin": "http://127.0.0.1:9999"}),  # another local server's page
    ],
)
def test_other_sites_cannot_drive_or_read_the_page(server, rng, method, path, headers):
    runner, client = server
    files = [("content", ("c.png", png(rng), "image/png")), ("styles", ("s.png", png(rng), "image/png"))]
    extra = {"files": files, "data": FAST} if method == "POST" else {}
    r = client.request(method, path, headers=headers, **extra)
    assert r.status_code == 403 and ("another site" in r.json()["error"] or "answers as" in r.json()["error"])
    assert runner.runs == {}  # nothing started


@pytest.mark.slow
def test_the_page_itself_may_drive_it(server, rng):
    runner, client = server
    same = {"origin": "http://127.0.0.1:8765", "sec-fetch-site": "same-origin"}
    files = [("content", ("c.png", png(rng), "image/png")), ("styles", ("s.png", png(rng), "image/png"))]
    r = client.post("/api/runs", files=files, data={**FAST, "steps": "100000"}, headers=same)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    assert client.post(f"/api/runs/{run_id}/stop", headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(f"/api/runs/{run_id}/stop", headers=same).status_code == 200
    assert wait_for(runner, run_id, lambda r: r.status in ("stopped", "done")).status == "stopped"
    for name in ("localhost:8765", "[::1]:8765", "127.0.0.1"):
        assert client.get("/api/runs", headers={"host": name}).status_code == 200


def test_host_names():
    from jaxnst.web.app import host_name

    assert [host_name(h) for h in ("127.0.0.1:8765", "LOCALHOST", "[::1]:80", "[::1]", "::1", "")] == [
        "127.0.0.1", "localhost", "::1", "::1", "::1", ""]  # fmt: skip


def test_oversize_uploads_are_refused_before_they_are_read(server, rng, monkeypatch):
    """A body over the cap is 413 from its length, or as it arrives without one; a file over the
    per-file cap is refused before it is read into memory. Nothing is queued."""
    import jaxnst.web.app as app

    runner, client = server
    content, style = png(rng, 64, 64), png(rng)
    files = [("content", ("c.png", content, "image/png")), ("styles", ("s.png", style, "image/png"))]
    monkeypatch.setattr(app, "MAX_REQUEST_BYTES", 4000)
    r = client.post("/api/runs", files=files, data=FAST)
    assert r.status_code == 413 and "over 0 MiB in all" in r.json()["error"]
    body, kind = multipart([("content", "c.png", content), ("styles", "s.png", style)], FAST)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # no Content-Length: sent chunked
    r = client.post("/api/runs", content=chunks, headers={"content-type": kind})
    assert r.status_code == 413, r.text
    monkeypatch.setattr(app, "MAX_REQUEST_BYTES", 2**30)
    monkeypatch.setattr(app, "MAX_UPLOAD_BYTES", 1000)
    r = client.post("/api/runs", files=files, data=FAST)
    assert r.status_code == 400 and "c.png is 0 MiB: give one of at most 0 MiB" in r.json()["error"]
    assert runner.runs == {}


@pytest.mark.slow
def test_the_queue_and_the_size_are_bounded(server, rng, monkeypatch):
    import jaxnst.web.runs as runs

    runner, client = server
    r = start(client, rng, size="5000")
    assert r.status_code == 400 and "size 5000 is too large for the page: use at most 4096 px" in r.json()["error"]
    monkeypatch.setattr(runs, "MAX_QUEUED", 1)
    first = start(client, rng, steps="100000").json()["id"]
    wait_for(runner, first, lambda r: r.status == "running")
    second = start(client, rng, steps="100000").json()["id"]
    r = start(client, rng)
    assert r.status_code == 400 and "1 runs are already waiting" in r.json()["error"]
    for run_id in (second, first):
        client.post(f"/api/runs/{run_id}/stop")
    wait_for(runner, first, lambda r: r.status == "stopped")


@pytest.mark.slow
def test_a_stopping_server_keeps_the_painted_image_and_the_queue(tmp_path, vgg19, rng):
    """``close`` (what a signal to `jaxnst serve` does): the run being painted stops at the end of its block,
    its image kept as its result; the queued one stays queued on disk and the next server runs it."""
    runner = Runner(tmp_path / "runs", vgg19)
    with TestClient(make_app(runner), base_url="http://127.0.0.1:8765") as client:
        long = start(client, rng, steps="100000").json()["id"]
        queued = start(client, rng).json()["id"]
        wait_for(runner, long, lambda r: r.step > 0)
        runner.close()
        assert client.get(f"/api/runs/{long}/result/0").status_code == 200
    painted = runner.get(long)
    assert painted.status == "stopped" and painted.message == f"stopped at step {painted.step} when the server stopped"
    record = lambda run_id: json.loads((runner.folder / run_id / "run.json").read_text())  # noqa: E731
    assert record(long)["status"] == "stopped" and record(queued)["status"] == "queued"
    again = Runner(tmp_path / "runs", vgg19)
    assert again.get(long).status == "stopped" and wait_for(again, queued, lambda r: r.status in FINAL).status == "done"
    assert record(queued)["status"] == "done" and again.result(again.get(queued), 0) is not None
    again.close()


def test_the_token_is_needed_for_every_request(tmp_path, vgg19, rng, monkeypatch):
    """With a token (`jaxnst serve`'s): no request without it; ``?token=`` sets the cookie that lets the page's
    own requests in; a script may send the token itself."""
    monkeypatch.setattr(Runner, "_work", lambda self: None)  # submissions stay queued
    runner, token = Runner(tmp_path / "runs", vgg19), "the-token-0123456789"
    with TestClient(make_app(runner, token=token), base_url="http://127.0.0.1:8765") as client:
        for url in ["/", "/?token=wrong", f"/?token={token[:-1]}", "/?token=%C3%A9", "/api/runs",
                    "/api/runs/0123456789ab/image/0"]:  # fmt: skip
            r = client.get(url)
            assert r.status_code == 403 and "open the address with ?token= that `jaxnst serve` printed" in r.text, url
        client.cookies.set("jaxnst-token-8765", "wrong")
        assert client.get("/").status_code == 403 and start(client, rng).status_code == 403 and runner.runs == {}
        client.cookies.clear()
        r = client.get(f"/?token={token}")
        assert r.status_code == 200 and "<form" in r.text
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"jaxnst-token-8765={token};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/api/runs").status_code == 200 and start(client, rng).status_code == 201
        client.cookies.clear()
        assert client.get("/api/runs").status_code == 403
        assert client.get(f"/api/runs?token={token}").json()["runs"][0]["status"] == "queued"


def test_a_run_over_the_free_memory_is_refused_with_the_size_that_fits(idle, rng, monkeypatch):
    import re

    import jaxnst.web.runs as runs

    runner, client = idle
    monkeypatch.setattr(runs, "free_bytes", lambda: int(2**30 / runs.MARGIN))  # 1 GiB for a run
    r = start(client, rng, size="1024")  # the 32x24 content at 1024 px: 1024x768
    error = r.json()["error"]
    assert r.status_code == 400 and error.startswith("1024x768 px needs about 2.1 GiB, more than the 1.0 GiB free for "
                                                     "a run on cpu (test): use size "), error  # fmt: skip
    fits = int(re.fullmatch(r".*use size (\d+) or less", error)[1])
    assert start(client, rng, size=str(fits)).status_code == 201  # the size it names fits, and is about the largest
    assert start(client, rng, size=str(fits + 32)).status_code == 400
    # A sweep is one batch: three images need three times the memory.
    r = start(client, rng, size=str(fits), sweep_field="seed", sweep_values="1 2 3")
    assert r.status_code == 400 and f"{fits}x{fits * 3 // 4} px x 3 images needs" in r.json()["error"], r.text
    assert int(re.fullmatch(r".*use size (\d+) or less", r.json()["error"])[1]) < fits * 0.6
    monkeypatch.setattr(runs, "free_bytes", lambda: 2**20)
    assert start(client, rng).json()["error"].endswith(": free some memory first")
    assert len(runner.runs) == 1 and len(list(runner.folder.iterdir())) == 1  # nothing kept of the refused ones


@pytest.mark.slow
def test_the_page_memory_bound_is_above_xla_estimate():
    """``peak_bytes`` (no compile) against ``jaxnst.memory.estimate`` (a compile) of the page's default settings
    (w2, the costliest style statistic): above it, and not far."""
    from jaxnst.config import Config
    from jaxnst.memory import estimate

    assert Config().style_statistic == "w2"
    est = estimate((96, 128), [(96, 128)], Config(size=128)).peak
    assert est <= peak_bytes(96 * 128, 1) <= 1.5 * est, (est, peak_bytes(96 * 128, 1))
