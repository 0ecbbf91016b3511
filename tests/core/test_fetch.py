"""Download: resume, retries, mirrors, checksum, concurrency, offline mode, import — against a local server."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from http_server import ArchiveServer

from tm23data import config, manifest
from tm23data.fetch import (
    ChecksumError,
    DownloadError,
    OfflineError,
    RetryPolicy,
    fetch_archive,
    file_md5,
    import_archive,
)

FAST = RetryPolicy(attempts=3, backoff=0.01)


def source_for(urls, md5):
    return config.archive_source(md5=md5, urls=urls)


def test_download_verifies_and_renames_atomically(tm23_home, server, payload):
    data, md5 = payload
    path = fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert path.read_bytes() == data
    assert path.parent == tm23_home / "archives" / md5
    assert not list(path.parent.glob("*.part*")), "no partial files may remain"
    # Present means verified: a second call does not touch the network.
    fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert len(server.log) == 1


def test_resume_after_dropped_connection_uses_range(tm23_home, server, payload):
    data, md5 = payload
    server.script = ["drop", "drop"]
    path = fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert file_md5(path) == md5
    assert server.log[0].range is None
    # Each retry asks only for the bytes it lacks, guarded by the validator of the first response.
    starts = [int(r.range.split("=")[1].rstrip("-")) for r in server.log[1:]]
    assert 0 < starts[0] <= len(data) // 2 and starts[0] < starts[1] < len(data)
    assert all(r.if_range == server.etag for r in server.log[1:])
    assert [r.status for r in server.log] == [200, 206, 206]


def test_server_ignoring_range_restarts_from_zero(tm23_home, server, payload):
    data, md5 = payload
    server.script = ["drop", "ignore-range"]
    path = fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert path.read_bytes() == data


def test_retries_on_500_then_succeeds(tm23_home, server, payload):
    _, md5 = payload
    server.script = ["500", "500"]
    fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert [r.status for r in server.log] == [500, 500, 200]


def test_retries_are_bounded(tm23_home, server, payload):
    _, md5 = payload
    server.default = "500"
    with pytest.raises(DownloadError, match="gave up after 3"):
        fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert len(server.log) == 3
    assert not list((tm23_home / "archives" / md5).glob("*.zip"))


def test_mirrors_in_order_404_falls_through(tm23_home, payload):
    data, md5 = payload
    broken, good = ArchiveServer(data, default="404"), ArchiveServer(data)
    try:
        path = fetch_archive(source_for([broken.url(), good.url()], md5), progress=False, retry=FAST)
        assert path.read_bytes() == data
        assert [r.status for r in broken.log] == [404], "a 404 is final for that mirror: no retries"
        assert len(good.log) == 1
    finally:
        broken.close()
        good.close()


def test_access_denied_is_final_for_that_mirror(tm23_home, payload):
    data, md5 = payload
    denied, good = ArchiveServer(data, default="403"), ArchiveServer(data)
    try:
        path = fetch_archive(source_for([denied.url(), good.url()], md5), progress=False, retry=FAST)
        assert path.read_bytes() == data and [r.status for r in denied.log] == [403]
    finally:
        denied.close()
        good.close()


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_final_at_once(tm23_home, payload, caplog):
    """Nothing listening: the default policy (5 attempts, 1 s backoff) must not be spent on it."""
    import time

    data, md5 = payload
    tic = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        fetch_archive(source_for([f"http://127.0.0.1:{_closed_port()}/a.zip"], md5), progress=False)
    assert time.perf_counter() - tic < 2.0
    assert "connection refused" in str(err.value) and "tm23 generate" in str(err.value)
    assert not [r for r in caplog.records if "retry" in r.getMessage()]


def test_unresolvable_host_is_final_and_the_next_mirror_is_tried(tm23_home, payload, monkeypatch):
    """A name that does not resolve (what every URL gives without a network): no retries, next mirror."""
    import socket
    import time

    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "mirror.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    data, md5 = payload
    good = ArchiveServer(data)
    try:
        tic = time.perf_counter()
        path = fetch_archive(source_for(["http://mirror.invalid/a.zip", good.url()], md5), progress=False)
        assert time.perf_counter() - tic < 2.0 and path.read_bytes() == data
    finally:
        good.close()
    with pytest.raises(DownloadError, match="host name does not resolve"):
        fetch_archive(source_for(["http://mirror.invalid/b.zip"], "0" * 32), progress=False)


def test_redirect_loop_and_unsupported_scheme_fall_through_to_the_next_mirror(tm23_home, payload):
    data, md5 = payload
    looping, good = ArchiveServer(data, default="redirect-loop"), ArchiveServer(data)
    try:
        urls = ["ftp://127.0.0.1/tm23.zip", looping.url(), good.url()]
        path = fetch_archive(source_for(urls, md5), progress=False, retry=FAST)
        assert path.read_bytes() == data and len(good.body_requests()) == 1
        assert len(looping.log) > 1  # requests followed the redirects, gave up, and the next mirror was tried
    finally:
        looping.close()
        good.close()
    only_bad = source_for(["ftp://127.0.0.1/tm23.zip"], md5)
    path.unlink()  # fetch again, from the unusable mirror alone
    with pytest.raises(DownloadError, match="ftp://127.0.0.1/tm23.zip: InvalidSchema"):
        fetch_archive(only_bad, progress=False, retry=FAST)


def test_a_range_answer_starting_elsewhere_is_not_appended(tm23_home, server, payload):
    data, md5 = payload
    server.script = ["drop", "wrong-range"]
    path = fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    assert path.read_bytes() == data
    assert [r.status for r in server.log] == [200, 206, 200] and server.log[2].range is None


def test_checksum_mismatch_names_both_digests_and_serves_nothing(tm23_home, server, payload):
    data, md5 = payload
    server.default = "wrong"
    with pytest.raises(ChecksumError) as err:
        fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    wrong_md5 = __import__("hashlib").md5(bytes([data[0] ^ 0xFF]) + data[1:]).hexdigest()
    assert md5 in str(err.value) and wrong_md5 in str(err.value)
    folder = tm23_home / "archives" / md5
    assert not any(p.suffix == ".zip" for p in folder.iterdir())
    assert not list(folder.glob("*.part"))


def test_wrong_mirror_then_good_mirror(tm23_home, payload):
    data, md5 = payload
    bad, good = ArchiveServer(data, default="wrong"), ArchiveServer(data)
    try:
        path = fetch_archive(source_for([bad.url(), good.url()], md5), progress=False, retry=FAST)
        assert file_md5(path) == md5
    finally:
        bad.close()
        good.close()


def _fetch_in_child(source):
    return str(fetch_archive(source, progress=False, retry=FAST))


def test_four_concurrent_processes_make_one_download(tm23_home, payload):
    data, md5 = payload
    srv = ArchiveServer(data, delay=0.05)  # slow enough for the four to overlap
    try:
        source = source_for([srv.url()], md5)
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            paths = pool.map(_fetch_in_child, [source] * 4)
        assert len(set(paths)) == 1
        assert file_md5(paths[0]) == md5
        assert len(srv.body_requests()) == 1, [r.status for r in srv.log]
    finally:
        srv.close()


def test_offline_mode_never_touches_network(tm23_home, server, payload, monkeypatch):
    _, md5 = payload
    monkeypatch.setenv("TM23_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        fetch_archive(source_for([server.url()], md5), progress=False, retry=FAST)
    text = str(err.value)
    assert md5 in text and "tm23 import" in text and str(tm23_home) in text
    assert server.log == []


def test_env_selects_mirror_and_checksum(tm23_home, server, payload, monkeypatch):
    data, md5 = payload
    monkeypatch.setenv("TM23_URL", server.url())
    monkeypatch.setenv("TM23_MD5", md5)
    source = config.archive_source()
    assert source.urls == (server.url(),) and source.md5 == md5 and not source.is_published
    assert fetch_archive(progress=False, retry=FAST).read_bytes() == data


def test_default_source_is_published_record(tm23_home):
    source = config.archive_source()
    assert source.md5 == manifest.ARCHIVE_MD5 and source.is_published
    assert source.urls[0].startswith("https://archive.materialscloud.org/records/")
    assert "record_id=2113" in source.urls[1]
    assert source.filename == manifest.ARCHIVE_NAME


def test_bad_md5_setting_is_rejected(monkeypatch):
    monkeypatch.setenv("TM23_MD5", "not-a-digest")
    with pytest.raises(ValueError, match="TM23_MD5"):
        config.archive_source()


def test_import_verifies_then_copies(tm23_home, synthetic_zip, tmp_path):
    path, md5 = synthetic_zip
    target = import_archive(path, config.archive_source(md5=md5))
    assert file_md5(target) == md5 and target.parent.name == md5
    corrupted = tmp_path / "corrupt.zip"
    corrupted.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ChecksumError) as err:
        import_archive(corrupted, config.archive_source(md5=manifest.ARCHIVE_MD5))
    assert manifest.ARCHIVE_MD5 in str(err.value) and file_md5(corrupted) in str(err.value)
    assert not (tm23_home / "archives" / manifest.ARCHIVE_MD5).exists() or not any(
        (tm23_home / "archives" / manifest.ARCHIVE_MD5).glob("*.zip")
    )


def test_import_under_any_name_is_found_again_offline(tm23_home, synthetic_zip, tmp_path, monkeypatch):
    """A self-built archive known only by TM23_MD5: imported from a file not named *.zip, and with a
    leftover temporary file of an interrupted import beside it, the imported copy is the one used."""
    path, md5 = synthetic_zip
    odd = tmp_path / "TM23 download (1)"
    odd.write_bytes(path.read_bytes())
    monkeypatch.setenv("TM23_MD5", md5)
    monkeypatch.delenv("TM23_URL", raising=False)
    target = import_archive(odd)
    assert target.name == config.CUSTOM_ARCHIVE_NAME
    (target.parent / ".aaa.123.456.tmp.zip").write_bytes(b"partial")  # sorts before every real name
    monkeypatch.setenv("TM23_OFFLINE", "1")
    assert fetch_archive(progress=False) == target


def test_home_defaults_to_user_cache(monkeypatch):
    monkeypatch.delenv("TM23_HOME", raising=False)
    assert "tm23data" in str(config.home())
    monkeypatch.setenv("TM23_HOME", "/tmp/somewhere")
    assert str(config.home()) == os.path.realpath("/tmp/somewhere")
