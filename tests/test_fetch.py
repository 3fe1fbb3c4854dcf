"""jaxnst.fetch against a loopback server: verify, resume, reject, offline."""

import hashlib

import numpy as np
import pytest
from loopback import LoopbackServer, refused_url

from jaxnst.errors import JaxnstError
from jaxnst.fetch import DownloadError, HashMismatch, download, file_digests, hash_matches, parse_hash

DATA = np.random.default_rng(0).bytes(300_000)
MD5 = "md5:" + hashlib.md5(DATA).hexdigest()
SHA_PREFIX = "sha256:" + hashlib.sha256(DATA).hexdigest()[:8]


@pytest.fixture
def server():
    with LoopbackServer({"w.h5": DATA}) as s:
        yield s


def test_download_verifies_and_reports_progress(server, tmp_path):
    seen = []
    digests = download(server.url("w.h5"), tmp_path / "w.h5", MD5, size=len(DATA), progress=lambda d, t: seen.append(d))
    assert (tmp_path / "w.h5").read_bytes() == DATA
    assert digests["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert seen[-1] == len(DATA) and seen == sorted(seen)
    assert not (tmp_path / "w.h5.part").exists()
    # Already there and verified: no second request.
    download(server.url("w.h5"), tmp_path / "w.h5", SHA_PREFIX)
    assert len(server.requests) == 1


def test_truncated_transfer_is_resumed_with_range(server, tmp_path):
    server.truncate.add("w.h5")
    download(server.url("w.h5"), tmp_path / "w.h5", MD5, size=len(DATA), backoff=0)
    assert (tmp_path / "w.h5").read_bytes() == DATA
    assert [r for _, r in server.requests] == [None, f"bytes={len(DATA) // 2}-"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    (tmp_path / "w.h5.part").write_bytes(DATA[:1000])
    download(server.url("w.h5"), tmp_path / "w.h5", MD5)
    assert (tmp_path / "w.h5").read_bytes() == DATA
    assert server.requests == [("w.h5", "bytes=1000-")]


def test_complete_part_file_is_only_verified(server, tmp_path):
    (tmp_path / "w.h5.part").write_bytes(DATA)
    download(server.url("w.h5"), tmp_path / "w.h5", MD5)  # size unknown: the server answers 416
    assert (tmp_path / "w.h5").read_bytes() == DATA
    (tmp_path / "w.h5").unlink()
    (tmp_path / "w.h5.part").write_bytes(DATA)
    download(server.url("w.h5"), tmp_path / "w.h5", MD5, size=len(DATA))  # size known: no request
    assert len(server.requests) == 1


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "w.h5.part").write_bytes(b"garbage")
    download(server.url("w.h5"), tmp_path / "w.h5", MD5)
    assert (tmp_path / "w.h5").read_bytes() == DATA


def test_wrong_hash_is_rejected_and_nothing_is_left(server, tmp_path):
    bad = "md5:" + "0" * 32
    with pytest.raises(HashMismatch, match=r"md5 mismatch, expected 0{32}, got [0-9a-f]{32}.*deleted") as e:
        download(server.url("w.h5"), tmp_path / "w.h5", bad)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
    # A corrupt resumed transfer is caught the same way.
    (tmp_path / "w.h5.part").write_bytes(b"X" * 1000)
    with pytest.raises(HashMismatch):
        download(server.url("w.h5"), tmp_path / "w.h5", MD5)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_one_line(tmp_path):
    url = refused_url()
    with pytest.raises(DownloadError, match="connection refused") as e:
        download(url, tmp_path / "w.h5", MD5)
    assert url in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_wrong_size(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("nope.h5"), tmp_path / "w.h5", MD5)
    with pytest.raises(DownloadError, match=f"offers {len(DATA)} bytes, the manifest says 5"):
        download(server.url("w.h5"), tmp_path / "w.h5", MD5, size=5)


def test_hash_specs(tmp_path):
    (tmp_path / "f").write_bytes(DATA)
    d = file_digests(tmp_path / "f")
    assert hash_matches(d, MD5) and hash_matches(d, SHA_PREFIX) and hash_matches(d, SHA_PREFIX.upper())
    assert not hash_matches(d, "sha256:00000000")
    assert parse_hash("SHA256:DCBB9E9D") == ("sha256", "dcbb9e9d")
    with pytest.raises(JaxnstError, match="md5:<hex> or sha256:<hex>"):
        parse_hash("crc32:1234")


def test_interrupted_run_keeps_only_the_part_file(tmp_path):
    big = DATA * 10  # several 1 MiB chunks

    def ctrl_c(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with LoopbackServer({"w.h5": big}) as server:
        with pytest.raises(KeyboardInterrupt):
            download(server.url("w.h5"), tmp_path / "w.h5", None, progress=ctrl_c)
        assert [p.name for p in tmp_path.iterdir()] == ["w.h5.part"]  # nothing at w.h5 to be loaded
        kept = (tmp_path / "w.h5.part").stat().st_size
        assert 0 < kept < len(big)
        download(server.url("w.h5"), tmp_path / "w.h5", "md5:" + hashlib.md5(big).hexdigest())
        assert server.requests[-1] == ("w.h5", f"bytes={kept}-")
    assert (tmp_path / "w.h5").read_bytes() == big
