"""Downloads and locks that cannot hang or fill the disk, and a cache that heals itself (issue 11 items 2, 5,
6, 7, 10, 12; issue 12 item 3): against a real local HTTP server that trickles, streams forever or asks to
wait, and real processes that hold locks or die mid-write."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from tm23data import config, locks, upkeep
from tm23data.fetch import DownloadError, RetryPolicy, fetch_archive, import_archive
from tm23data.generation.synthetic import synthetic_archive
from tm23data.store import load_store, store_path
from tm23data.verify import verify

FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.05)


def _within(seconds, fn):
    """Run ``fn`` in a thread; its result or exception, failing the test if it is still running after ``seconds``."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            out["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return out


def test_a_trickling_mirror_is_cut_by_the_stall_timeout(tm23_home, server, payload, monkeypatch):
    monkeypatch.setenv("TM23_STALL_TIMEOUT", "0.5")
    server.default = "trickle"  # ~20 B/s, under the 1024 B/s minimum
    source = config.archive_source(md5=payload[1], urls=[server.url()])
    out = _within(10, lambda: fetch_archive(source, progress=False, retry=FAST))
    assert isinstance(out.get("error"), DownloadError) and "stalled" in str(out["error"])


def test_the_overall_deadline_bounds_a_slow_but_steady_mirror(tm23_home, server, payload, monkeypatch):
    monkeypatch.setenv("TM23_MIN_RATE", "1")
    monkeypatch.setenv("TM23_DOWNLOAD_DEADLINE", "1")
    server.default = "trickle"
    source = config.archive_source(md5=payload[1], urls=[server.url()])
    out = _within(10, lambda: fetch_archive(source, progress=False, retry=FAST))
    assert isinstance(out.get("error"), DownloadError) and "deadline" in str(out["error"])


def test_an_endless_body_is_bounded_and_its_part_removed(tm23_home, server, payload, monkeypatch):
    monkeypatch.setenv("TM23_MAX_DOWNLOAD_BYTES", str(4 * len(payload[0])))
    server.default = "endless"
    source = config.archive_source(md5=payload[1], urls=[server.url()])
    out = _within(10, lambda: fetch_archive(source, progress=False, retry=FAST))
    assert isinstance(out.get("error"), DownloadError) and "TM23_MAX_DOWNLOAD_BYTES" in str(out["error"])
    assert not list(source.archive_dir().glob("*.part"))


def test_the_verified_size_bounds_later_downloads(tm23_home, server, payload):
    data, md5 = payload
    source = config.archive_source(md5=md5, urls=[server.url()])
    path = fetch_archive(source, progress=False, retry=FAST)
    assert upkeep.expected_size(md5) == len(data)
    path.unlink()
    server.default = "endless"  # far below the 4 GiB default maximum, but over the known size
    out = _within(10, lambda: fetch_archive(source, progress=False, retry=FAST))
    assert isinstance(out.get("error"), DownloadError) and f"{len(data)} bytes" in str(out["error"])


@pytest.mark.parametrize("asked, max_backoff, at_least, at_most", [(1, 5.0, 0.9, 5.0), (3600, 0.2, 0.0, 3.0)])
def test_retry_after_is_honoured_within_bounds(tm23_home, server, payload, asked, max_backoff, at_least, at_most):
    server.script, server.retry_after = ["retry-after"], asked
    source = config.archive_source(md5=payload[1], urls=[server.url()])
    start = time.monotonic()
    fetch_archive(source, progress=False, retry=RetryPolicy(attempts=3, backoff=0.01, max_backoff=max_backoff))
    assert at_least <= time.monotonic() - start <= at_most


def test_a_refused_connection_fails_at_once_and_names_the_offline_route(tm23_home, payload):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = config.archive_source(md5=payload[1], urls=[f"http://127.0.0.1:{port}/t.zip"])
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_archive(source, progress=False)  # the default retry policy: refused is final, not retried
    assert time.monotonic() - start < 2
    assert "tm23 generate" in str(err.value) and "tm23 import" in str(err.value)


HOLD = """
import sys, time
from tm23data import locks
with locks.held(sys.argv[1], "holding for a test"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_lock_waiter_names_the_holder_and_gives_up(tm23_home, payload, monkeypatch):
    source = config.archive_source(md5=payload[1], urls=["http://127.0.0.1:9/t.zip"])
    lock = str(source.archive_dir() / source.filename) + ".lock"
    source.archive_dir().mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, lock], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert locks.owner(lock)["pid"] == holder.pid
        monkeypatch.setenv("TM23_LOCK_TIMEOUT", "1")
        start = time.monotonic()
        with pytest.raises(locks.LockTimeout, match=rf"pid {holder.pid} on .*holding for a test"):
            fetch_archive(source, progress=False)
        assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_foreign_archive_in_the_slot_is_not_served_and_import_repairs_it(cached, synthetic_zip, tmp_path):
    good = load_store("Cu", progress=False)
    slot = config.archive_source().archive_path()
    synthetic_archive(tmp_path / "other.zip", ["Cu"], 9, 3, seed=7)  # another valid TM23 zip
    os.replace(tmp_path / "other.zip", slot)
    store_path("Cu").unlink()
    with pytest.raises(DownloadError, match="no URL"):
        load_store("Cu", progress=False)
    assert list((config.home() / "quarantine").glob("*.zip"))
    import_archive(synthetic_zip[0])
    assert load_store("Cu", progress=False).content_hash == good.content_hash


def test_a_damaged_archive_is_quarantined_and_fetched_again(tm23_home, server, payload, monkeypatch):
    data, md5 = payload
    monkeypatch.setenv("TM23_MD5", md5)
    monkeypatch.setenv("TM23_URL", server.url())
    path = fetch_archive(progress=False, retry=FAST)
    st = path.stat()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("benchmarking_master_collection/Cu_cold_nequip_train.xyz")
    damaged = bytearray(data)
    damaged[info.header_offset + 30 + len(info.filename) + 10] ^= 0xFF  # inside the member's compressed bytes
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the cheap check passes: only reading finds it
    store = load_store("Cu", progress=False)
    assert len(store) > 0 and path.read_bytes() == data
    assert len(list((config.home() / "quarantine").glob("*.zip"))) == 1


def test_archive_found_by_md5_whatever_the_url_names_it(cached, monkeypatch):
    source_before = config.archive_source()
    monkeypatch.setenv("TM23_URL", "http://127.0.0.1:9/mirror/renamed.zip")
    monkeypatch.setenv("TM23_OFFLINE", "1")
    found = fetch_archive(progress=False)
    assert found.parent.name == cached and found.exists()
    assert source_before.archive_path() == found


def test_an_archive_source_made_before_import_finds_the_imported_file(tm23_home, synthetic_zip, tmp_path, monkeypatch):
    path, md5 = synthetic_zip
    own = tmp_path / "my-build.zip"
    own.write_bytes(path.read_bytes())
    source = config.archive_source(md5=md5, urls=())
    import_archive(own, config.archive_source(md5=md5, urls=()))
    monkeypatch.setenv("TM23_OFFLINE", "1")
    assert fetch_archive(source, progress=False).name in ("my-build.zip", path.name)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_by_the_next_build_and_by_verify(cached):
    load_store("Cu", progress=False)
    folder = store_path("Cu").parent
    dead = _dead_pid()
    stale = folder / f".Cu.{dead}.1.tmp.h5"
    live = folder / f".Cu.{os.getpid()}.1.tmp.h5"
    stale.write_bytes(b"half a store")
    live.write_bytes(b"being written")
    store_path("Cu").unlink()
    load_store("Cu", progress=False)
    assert not stale.exists() and live.exists()
    copy = config.archive_source().archive_dir() / f".archive.{dead}.1.tmp.zip"  # a killed `tm23 import`
    copy.write_bytes(b"x" * 1000)
    report = verify(["Cu"])
    assert str(copy) in report["removed_temporaries"] and not copy.exists() and live.exists()


def test_verify_refetches_a_damaged_archive_when_a_url_is_set(tm23_home, server, payload, monkeypatch, capsys):
    data, md5 = payload
    monkeypatch.setenv("TM23_MD5", md5)
    monkeypatch.setenv("TM23_URL", server.url())
    path = fetch_archive(progress=False, retry=FAST)
    path.write_bytes(data[:-10] + b"x" * 10)
    report = verify(["Cu"])
    assert report["ok"], report["problems"]
    assert "repaired" in report["archive"] and path.read_bytes() == data
    assert json.dumps(report)
