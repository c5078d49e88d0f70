"""Pytest fixtures for the SDK compatibility suite.

Owns: one `sluice serve` for the whole session (binary from $SLUICE_BIN or
<repo>/target/debug/sluice, built with cargo when missing), and a fresh source
per test so reads never mix.
"""
import re
import uuid

import pytest

from harness import Sluice, sluice_binary


@pytest.fixture(scope="session")
def sluice(tmp_path_factory):
    try:
        binary = sluice_binary()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    base = tmp_path_factory.mktemp("sluice")
    server = Sluice(binary, base / "data", base / "sluice.log")
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def source(sluice, request):
    """A new source, created with `sluice source create NAME --json` while the server runs."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return sluice.create_source(f"compat-{slug}-{uuid.uuid4().hex[:8]}")
