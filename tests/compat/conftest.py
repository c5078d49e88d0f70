"""Pytest fixtures for the SDK compatibility suite.

Owns: one `sluice serve` for the whole session (binary from $SLUICE_BIN or
<repo>/target/debug/sluice, built with cargo when missing), and a fresh source
per test so reads never mix.
"""
import re
import shutil
import uuid

import pytest

from harness import NODE_MODULES, Sluice, sluice_binary


@pytest.fixture(scope="session")
def sluice(tmp_path_factory):
    missing = missing_test_deps()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-test-deps.sh", pytrace=False)
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


def missing_test_deps():
    missing = [tool for tool in ("node", "chromium") if not shutil.which(tool)]
    for package in ("@segment/analytics-node", "@rudderstack/rudder-sdk-node",
                    "@segment/analytics-next", "@rudderstack/analytics-js"):
        if not (NODE_MODULES / package / "package.json").is_file():
            missing.append(package)
    return missing
