"""Shared fixtures of every tier (tests/core: the data layer on the core install; tests/views: torch and
PyG; tests/generation, tests/baselines: their extras; each tier skips with a reason when its extra is
missing): a TM23-format archive made by tm23data.generation.synthetic, and an isolated cache per test."""

from __future__ import annotations

import pytest
from support import ARCHIVE_ELEMENTS, N_TEST, N_TRAIN

from tm23data.fetch import import_archive
from tm23data.generation.synthetic import synthetic_archive


@pytest.fixture(scope="session")
def synthetic_zip(tmp_path_factory):
    """(path, md5) of a TM23-format archive: all 8 members for Cu, Ti and W, 9 train / 3 test frames per regime."""
    path = tmp_path_factory.mktemp("archive") / "benchmarking_master_collection-20240316T202423Z-001.zip"
    md5 = synthetic_archive(path, ARCHIVE_ELEMENTS, N_TRAIN, N_TEST, seed=0)
    return path, md5


@pytest.fixture(autouse=True)
def _never_the_user_cache(tmp_path_factory, monkeypatch):
    """No test writes into the user's real cache: TM23_HOME points at a fresh folder unless a test sets it."""
    monkeypatch.setenv("TM23_HOME", str(tmp_path_factory.mktemp("default-home")))
    monkeypatch.delenv("TM23_ARCHIVE", raising=False)


@pytest.fixture
def tm23_home(tmp_path, monkeypatch):
    """An empty cache root, with no archive configuration inherited from the environment."""
    home = tmp_path / "tm23home"
    monkeypatch.setenv("TM23_HOME", str(home))
    for var in ("TM23_URL", "TM23_MD5", "TM23_OFFLINE", "TM23_ARCHIVE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def cached(tm23_home, synthetic_zip, monkeypatch):
    """The synthetic archive imported into an empty cache and selected with TM23_MD5; returns its md5."""
    path, md5 = synthetic_zip
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(path)
    return md5
