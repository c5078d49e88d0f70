"""The admin API's source creation, checked against the CLI's: the other way
the contract offers to get a write key, used here end to end with an SDK.
"""
import uuid

import requests

import checks
from checks import make_plan, utc_now
from harness import ADMIN_TOKEN, node_driver, run_driver

SOURCE_FIELDS = {"id", "name", "workspace_id", "enabled", "write_key"}


def test_admin_api_source_works_like_cli_source(sluice):
    name = f"compat-admin-api-{uuid.uuid4().hex[:8]}"
    resp = requests.post(f"{sluice.base_url}/api/v1/sources", json={"name": name}, timeout=5,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 201, f"POST /api/v1/sources: {resp.status_code} {resp.text}"
    source = resp.json()
    cli_source = sluice.create_source(f"{name}-cli")
    assert SOURCE_FIELDS <= cli_source.keys(), f"CLI source object lacks {SOURCE_FIELDS - cli_source.keys()}"
    assert SOURCE_FIELDS <= source.keys(), (
        f"API source object lacks {SOURCE_FIELDS - source.keys()} (CLI prints {sorted(cli_source)}): {source}")
    assert source["name"] == name and source["enabled"] is True, source
    assert source["workspace_id"] == cli_source["workspace_id"] and source["workspace_id"].startswith("ws_"), source
    assert source["write_key"] != cli_source["write_key"] and source["id"] != cli_source["id"]

    plan = make_plan(checks.SEGMENT_NODE, host=sluice.base_url, writeKey=source["write_key"])
    start = utc_now()
    report = run_driver(node_driver("segment_node.js"), plan)
    events = sluice.wait_for_events(source["id"], len(checks.CALLS))
    checks.check_events(events, checks.SEGMENT_NODE, plan, (start, utc_now()), sent=report["sent"])
    assert sluice.events(cli_source["id"]) == [], "events leaked into another source"
