"""Browser SDKs in headless Chromium against a real Sluice:
@segment/analytics-next (snippet + CDN settings) and @rudderstack/analytics-js.

The page and SDK bundle come from pageserver.py on one loopback port, events go
to Sluice on another, so every event post is a cross-origin request with an
Authorization header: a CORS preflight must pass before anything is stored.
"""
import pytest
import requests

import checks
from checks import make_plan, utc_now
from harness import Chromium
from pageserver import PageServer

CASES = {
    # id: (sdk facts, page, plan overrides)
    "analytics-next": (checks.AJS_NEXT, "segment.html", {}),  # POST /v1/i, /v1/t, ...
    "analytics-next-batching": (checks.AJS_NEXT, "segment.html", {"batching": True}),  # POST /v1/b
    "rudder-analytics-js": (checks.RUDDER_JS, "rudder.html", {}),  # POST /v1/identify, ...
    "rudder-analytics-js-batching": (checks.RUDDER_JS, "rudder.html", {"batching": True}),  # /v1/batch
}

# Access-Control-Request-Headers each SDK's preflights carry, first try and retries
# (see the reference captures).
PREFLIGHT_HEADERS = {
    checks.AJS_NEXT.key: ["authorization", "x-retry-count"],
    checks.RUDDER_JS.key: ["anonymousid", "authorization", "content-type", "sentat",
                            "rsa-retry-attempt", "rsa-retry-reason", "rsa-since-first-attempt",
                            "rsa-since-last-attempt"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_browser_sdk(case, sluice, source, tmp_path):
    sdk, page, overrides = CASES[case]
    plan = make_plan(sdk, writeKey=source["write_key"], dataPlaneUrl=sluice.base_url, **overrides)
    pages = PageServer(plan, sluice.port)
    chromium = Chromium(tmp_path / "profile", tmp_path / "chromium.log")
    pages.start()
    start = utc_now()
    try:
        chromium.start(f"{pages.origin}/pages/{page}")
        try:
            events = sluice.wait_for_events(source["id"], len(sdk.calls),
                                            on_poll=lambda: assert_no_page_errors(pages))
        except AssertionError as err:
            raise AssertionError(f"{err}\n{diagnosis(sluice, pages, chromium, sdk)}") from None
    finally:
        chromium.stop()
        pages.stop()
    end = utc_now()

    assert_no_page_errors(pages)
    sent = {event["type"]: event for event in pages.reported("event")}
    ready = pages.reported("ready")
    assert ready, "the SDK never became ready"
    checks.check_events(events, sdk, plan, (start, end), sent=sent,
                        anonymous_id=ready[0].get("anonymousId"))


@pytest.mark.parametrize("case", list(PREFLIGHT_HEADERS))
def test_cors_preflight_allows_sdk_headers(case, sluice):
    """The preflight answer names every header the SDK asks for. `*` is not
    enough: the Fetch spec does not let it cover Authorization."""
    resp = preflight(sluice, "http://127.0.0.1:9", "/v1/t", PREFLIGHT_HEADERS[case])
    assert 200 <= resp.status_code < 300, f"preflight {resp.status_code} {dict(resp.headers)}"
    origin = resp.headers.get("Access-Control-Allow-Origin")
    assert origin in ("*", "http://127.0.0.1:9"), f"Access-Control-Allow-Origin {origin!r}"
    allowed = {h.strip().lower() for h in resp.headers.get("Access-Control-Allow-Headers", "").split(",")}
    missing = [h for h in PREFLIGHT_HEADERS[case] if h not in allowed]
    assert not missing, f"preflight does not allow {missing}; Access-Control-Allow-Headers={allowed}"
    methods = resp.headers.get("Access-Control-Allow-Methods", "").upper()
    assert "POST" in methods or methods == "*", f"Access-Control-Allow-Methods {methods!r}"


def preflight(sluice, origin, path, headers):
    return requests.options(sluice.base_url + path, timeout=5, headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ",".join(headers),
    })


def assert_no_page_errors(pages):
    errors = pages.reported("error")
    assert not errors, f"page reported errors: {errors}"


def diagnosis(sluice, pages, chromium, sdk):
    """What to look at when the browser's events did not arrive."""
    try:
        resp = preflight(sluice, pages.origin, "/v1/t", PREFLIGHT_HEADERS[sdk.key])
        cors = f"{resp.status_code} {dict(resp.headers)}"
    except requests.RequestException as err:
        cors = repr(err)
    return (f"page reports: {pages.reports}\npage-server 404s: {pages.misses}\n"
            f"preflight OPTIONS /v1/t from {pages.origin}: {cors}\n"
            f"--- chromium log ---\n{chromium.log_tail()}")
