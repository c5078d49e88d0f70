"""Server-side SDKs against a real Sluice: segment-analytics-python,
rudder-sdk-python, @segment/analytics-node, @rudderstack/rudder-sdk-node.

Each test sends identify, track, page, screen, group and alias through the SDK
(drivers/), reads the events back from the events API and checks them
field by field (checks.py). Variants cover the SDKs' gzip modes, a client
clock that is off, and retries after a lost response (same messageIds resent).
"""
import pytest

import checks
from checks import make_plan, utc_now
from flakyproxy import FlakyProxy
from harness import node_driver, python_driver, run_driver

CASES = {
    # id: (sdk facts, driver command, plan overrides)
    "segment-python": (checks.SEGMENT_PYTHON, python_driver("segment"), {}),
    "segment-python-gzip": (checks.SEGMENT_PYTHON, python_driver("segment"), {"gzip": True}),
    "rudder-python-gzip-default": (checks.RUDDER_PYTHON, python_driver("rudder"), {}),
    # the SDK's clock is off: stored timestamp is corrected, originalTimestamp kept
    "segment-python-clock-ahead": (checks.SEGMENT_PYTHON, python_driver("segment"), {"clockSkewSeconds": 3600}),
    "rudder-python-clock-behind": (checks.RUDDER_PYTHON, python_driver("rudder"), {"clockSkewSeconds": -5400}),
    "segment-node": (checks.SEGMENT_NODE, node_driver("segment_node.js"), {}),
    # default rud-node: gzip body sent as application/x-www-form-urlencoded
    "rudder-node-gzip-form-default": (checks.RUDDER_NODE, node_driver("rudder_node.js"), {}),
    "rudder-node-json": (checks.RUDDER_NODE, node_driver("rudder_node.js"), {"gzip": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_server_sdk(case, sluice, source):
    sdk, driver, overrides = CASES[case]
    plan = make_plan(sdk, host=sluice.base_url, writeKey=source["write_key"], **overrides)

    start = utc_now()
    report = run_driver(driver, plan)
    events = sluice.wait_for_events(source["id"], len(sdk.calls))
    end = utc_now()

    checks.check_events(events, sdk, plan, (start, end), sent=report["sent"])


def test_events_api_order_and_limit(sluice, source):
    """One seg-py batch: the events API lists it oldest first, in batch order,
    and ?limit=N gives the latest N."""
    plan = make_plan(checks.SEGMENT_PYTHON, host=sluice.base_url, writeKey=source["write_key"])
    report = run_driver(python_driver("segment"), plan)
    events = sluice.wait_for_events(source["id"], len(checks.CALLS))

    sent_ids = [report["sent"][call]["messageId"] for call in checks.CALLS]
    assert [e["messageId"] for e in events] == sent_ids, [e["type"] for e in events]
    latest = sluice.events(source["id"], limit=2)
    assert [e["messageId"] for e in latest] == sent_ids[-2:], [e["type"] for e in latest]


RETRY_CASES = {
    "segment-python": (checks.SEGMENT_PYTHON, python_driver("segment")),
    "rudder-python": (checks.RUDDER_PYTHON, python_driver("rudder")),
    "segment-node": (checks.SEGMENT_NODE, node_driver("segment_node.js")),
    "rudder-node": (checks.RUDDER_NODE, node_driver("rudder_node.js")),
}


@pytest.mark.parametrize("case", list(RETRY_CASES))
def test_server_sdk_retry_after_lost_response(case, sluice, source):
    """Sluice stores the first request but the SDK sees a 503 and sends it again
    with the same messageIds: each message must still be stored once."""
    sdk, driver = RETRY_CASES[case]
    proxy = FlakyProxy(sluice.base_url, lose=1)
    proxy.start()
    try:
        plan = make_plan(sdk, host=proxy.base_url, writeKey=source["write_key"])
        start = utc_now()
        report = run_driver(driver, plan)
        events = sluice.wait_for_events(source["id"], len(sdk.calls))
        end = utc_now()
    finally:
        proxy.stop()

    assert proxy.posts[0][1] == 503 and len(proxy.posts) >= 2, f"the SDK did not retry: {proxy.posts}"
    checks.check_events(events, sdk, plan, (start, end), sent=report["sent"])
