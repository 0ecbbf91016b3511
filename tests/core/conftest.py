"""Fixtures of the download tests (test_fetch, test_download_limits): the shared archive's bytes and a local
HTTP server on 127.0.0.1 serving them."""

from __future__ import annotations

import pytest
from http_server import ArchiveServer


@pytest.fixture
def payload(synthetic_zip):
    """(bytes, md5) of the session's synthetic archive."""
    path, md5 = synthetic_zip
    return path.read_bytes(), md5


@pytest.fixture
def server(payload):
    """A local server answering with the archive (its ``script``/``default`` set the behaviour)."""
    srv = ArchiveServer(payload[0])
    yield srv
    srv.close()
