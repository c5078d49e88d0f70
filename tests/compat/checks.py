"""What the SDKs are told to send, and how stored events are checked against it.

Owns: the per-run plan (distinctive ids and values every driver and page uses),
the per-SDK facts (library name, messageId format, where identify traits go),
and the assertions on events read back from Sluice.
"""
import re
import uuid
from datetime import datetime, timedelta, timezone

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
ISO_ANY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

CALLS = ["identify", "track", "page", "screen", "group", "alias"]


class Sdk:
    """Facts about one SDK's messages (see clients.md in the reference notes)."""

    def __init__(self, key, library, library_version, message_id, *, calls=CALLS,
                 traits_at=("traits",), browser=False, extra=None, drops_nulls=False):
        self.key = key
        self.library = library
        self.library_version = library_version
        self.message_id = re.compile(f"^{message_id}$")
        self.calls = calls
        # where identify traits end up: "traits" (top level) and/or "context.traits"
        self.traits_at = traits_at
        self.browser = browser
        # fields the SDK adds itself, expected back unchanged: {field: value}
        self.extra = extra or {}
        # the SDK itself removes null-valued properties before sending
        self.drops_nulls = drops_nulls


SEGMENT_PYTHON = Sdk("segment-python", "analytics-python", "2.4.0", UUID4)
RUDDER_PYTHON = Sdk("rudder-python", "analytics-python", "2.1.9", UUID4,
                    traits_at=("context.traits",), extra={"channel": "server"})
SEGMENT_NODE = Sdk("segment-node", "@segment/analytics-node", "3.1.0", rf"node-next-\d{{13}}-{UUID}")
RUDDER_NODE = Sdk("rudder-node", "analytics-node", "3.0.13", UUID4,
                  traits_at=("traits", "context.traits"), extra={"channel": "server"})
AJS_NEXT = Sdk("analytics-next", "analytics.js", "next-1.84.3", rf"ajs-next-\d{{13}}-{UUID}",
               browser=True)
RUDDER_JS = Sdk("rudder-js", "RudderLabs JavaScript SDK", "3.34.1", UUID4,
                calls=[c for c in CALLS if c != "screen"], traits_at=("context.traits",),
                browser=True, extra={"channel": "web"}, drops_nulls=True)


def make_plan(sdk, **extra):
    """Distinctive values for one test run; the drivers and pages send exactly these."""
    run = uuid.uuid4().hex
    short = run[:8]
    plan = {
        "sdk": sdk.key,
        "run": run,
        "userId": f"user-{run}",
        "previousId": f"previous-{run}",
        "groupId": f"group-{run}",
        "identifyTraits": {
            "email": f"ada-{short}@example.com",
            "name": "Ada Lovelace",
            "plan": "pro",
            "logins": 7,
            "address": {"city": "Zürich", "postalCode": "8001"},
        },
        "event": f"Order Completed {short}",
        "trackProperties": {
            "orderId": f"order-{run}",
            "revenue": 42.5,
            "quantity": 3,
            "currency": "USD",
            "gift": False,
            "coupon": None,
            "tags": ["new", "sale"],
            "items": [{"sku": f"sku-{short}", "price": 14.17, "qty": 3}],
            "note": 'naïve café ☕ 日本語 "quoted" \\ back\nslash',
        },
        "pageCategory": "Docs",
        "pageName": f"Getting Started {short}",
        "pageProperties": {"section": "intro", "run": run},
        "screenCategory": "Onboarding",
        "screenName": f"Welcome {short}",
        "screenProperties": {"step": 2, "run": run},
        "groupTraits": {"name": f"Acme {short}", "employees": 120, "industry": "Widgets"},
        # sent as extra context on every call; must come back unchanged
        "context": {"compat": {"run": run, "nested": {"list": [1, "two", {"three": 3.5}], "ok": True}}},
        "integrations": {"Compat Destination": False},
    }
    if sdk.drops_nulls:
        plan["trackProperties"] = {k: v for k, v in plan["trackProperties"].items() if v is not None}
    plan.update(extra)
    return plan


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def get_path(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def assert_contains(actual, expected, where):
    """Every key of `expected` is in `actual` with an equal value."""
    assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
    for key, value in expected.items():
        assert key in actual, f"{where}.{key} missing; got {actual!r}"
        assert actual[key] == value, f"{where}.{key}: stored {actual[key]!r}, sent {value!r}"


def expected_fields(call, plan):
    """The call-specific fields every SDK is asked to send (properties/traits checked separately)."""
    return {
        "identify": {"userId": plan["userId"]},
        "track": {"userId": plan["userId"], "event": plan["event"]},
        "page": {"userId": plan["userId"], "name": plan["pageName"]},
        "screen": {"userId": plan["userId"], "name": plan["screenName"]},
        "group": {"userId": plan["userId"], "groupId": plan["groupId"]},
        "alias": {"userId": plan["userId"], "previousId": plan["previousId"]},
    }[call]


def check_events(events, sdk, plan, window, sent=None, anonymous_id=None):
    """Checks the events stored for one SDK run.

    events: what the events API returned for the run's fresh source.
    window: (start, end) datetimes bracketing the run, for time sanity checks.
    sent: {call: message} as the SDK reported it, where the driver or page can tell
          (so messageId and every other field must come back as sent).
    anonymous_id: the browser SDK's anonymousId as the page reported it, where known.
    Returns {call: stored event}.
    """
    types = [e.get("type") for e in events]
    assert sorted(types) == sorted(sdk.calls), f"stored types {types}, expected one each of {sdk.calls}"
    ids = [e.get("messageId") for e in events]
    assert len(set(ids)) == len(ids), f"duplicate messageIds stored: {ids}"

    by_type = {e["type"]: e for e in events}
    anonymous_ids = set()
    for call in sdk.calls:
        ev = by_type[call]
        where = f"{sdk.key} {call}"
        check_common(ev, sdk, plan, window, where)
        assert_contains(ev, expected_fields(call, plan), where)
        check_call_specific(ev, call, sdk, plan, where)
        if sent and call in sent:
            check_sent_kept(ev, sent[call], where)
        anonymous_ids.add(ev.get("anonymousId"))
    if sdk.browser:
        assert len(anonymous_ids) == 1, f"one browser, one anonymousId; stored {anonymous_ids}"
        (anon,) = anonymous_ids
        assert isinstance(anon, str) and re.fullmatch(UUID, anon), f"browser anonymousId {anon!r}"
        if anonymous_id:
            assert anon == anonymous_id, f"stored anonymousId {anon!r}, page has {anonymous_id!r}"
    else:
        assert anonymous_ids == {None}, f"server SDK sent no anonymousId, stored {anonymous_ids}"
    return by_type


def check_common(ev, sdk, plan, window, where):
    assert "writeKey" not in ev, f"{where}: writeKey stored: {ev['writeKey']!r}"
    assert sdk.message_id.match(ev.get("messageId", "")), f"{where}: messageId {ev.get('messageId')!r}"

    library = get_path(ev, "context.library") or {}
    assert library.get("name") == sdk.library, f"{where}: context.library {library!r}"
    assert library.get("version") == sdk.library_version, f"{where}: context.library {library!r}"
    assert_contains(ev.get("context"), plan["context"], f"{where} context")
    assert_contains(ev.get("integrations"), plan["integrations"], f"{where} integrations")
    assert get_path(ev, "context.ip") == "127.0.0.1", f"{where}: context.ip {get_path(ev, 'context.ip')!r}"
    for key, value in sdk.extra.items():
        assert ev.get(key) == value, f"{where}: {key} {ev.get(key)!r}, expected {value!r}"

    start, end = window
    slack = timedelta(seconds=2)
    for field in ("receivedAt", "timestamp"):
        value = ev.get(field)
        assert isinstance(value, str) and ISO_Z.match(value), f"{where}: {field} {value!r} is not ISO-8601 UTC with Z"
        at = parse_time(value)
        assert start - slack <= at <= end + slack, f"{where}: {field} {value} outside the run {start}..{end}"
    original = ev.get("originalTimestamp")
    assert isinstance(original, str) and ISO_ANY.match(original), f"{where}: originalTimestamp {original!r}"
    # timestamp = receivedAt - (sentAt - originalTimestamp): the client's time moved
    # onto the server's clock, so it is off from originalTimestamp by the client's skew.
    skew = timedelta(seconds=plan.get("clockSkewSeconds", 0))
    error = parse_time(original) - parse_time(ev["timestamp"]) - skew
    assert abs(error) < slack, (
        f"{where}: timestamp {ev['timestamp']} vs originalTimestamp {original}, client clock off by {skew}")
    assert parse_time(ev["timestamp"]) <= parse_time(ev["receivedAt"]) + slack, where


def check_call_specific(ev, call, sdk, plan, where):
    if call == "identify":
        for path in sdk.traits_at:
            assert_contains(get_path(ev, path), plan["identifyTraits"], f"{where} {path}")
        if "traits" not in sdk.traits_at:
            assert "traits" not in ev, f"{where}: SDK sends no top-level traits, stored {ev.get('traits')!r}"
    elif call == "track":
        assert_contains(ev.get("properties"), plan["trackProperties"], f"{where} properties")
    elif call == "page":
        assert_contains(ev.get("properties"), plan["pageProperties"], f"{where} properties")
        category = ev.get("category", get_path(ev, "properties.category"))
        assert category == plan["pageCategory"], f"{where}: category {category!r}"
    elif call == "screen":
        assert_contains(ev.get("properties"), plan["screenProperties"], f"{where} properties")
    elif call == "group":
        assert_contains(ev.get("traits"), plan["groupTraits"], f"{where} traits")


def check_sent_kept(ev, sent, where):
    """The stored event is the sent message, normalized: every sent field comes
    back unchanged, except the ones the server owns."""
    for key, value in sent.items():
        if key in ("writeKey", "sentAt", "timestamp"):
            continue
        if key in ("context", "integrations"):
            assert_contains(ev.get(key), value, f"{where} {key}")
        elif key == "anonymousId" and value is None:
            assert ev.get(key) is None, f"{where}: anonymousId {ev.get(key)!r}"
        else:
            assert key in ev, f"{where}: sent field {key} missing"
            assert ev[key] == value, f"{where}: {key} stored {ev[key]!r}, sent {value!r}"
    if "timestamp" in sent:
        assert ev["originalTimestamp"] == sent["timestamp"], (
            f"{where}: originalTimestamp {ev['originalTimestamp']!r}, sent timestamp {sent['timestamp']!r}")


def utc_now():
    return datetime.now(timezone.utc)
