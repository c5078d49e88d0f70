"""Driver for the two Python server SDKs: segment-analytics-python and rudder-sdk-python.

usage: python python_sdk.py segment|rudder '<plan JSON>'
The plan (see checks.make_plan) carries host, writeKey, gzip, an optional
clockSkewSeconds (the SDK's clock runs that far off) and the values to send. Sends identify, track, page, screen, group and alias, flushes, and prints
one JSON line: {"sent": {call: message as enqueued}, "errors": [...]}.
"""
import copy
import datetime
import json
import sys

sdk, plan = sys.argv[1], json.loads(sys.argv[2])
if sdk == "segment":
    from segment.analytics import Client, client as client_module, request as request_module
elif sdk == "rudder":
    from rudderstack.analytics import Client, client as client_module, request as request_module
else:
    sys.exit(f"unknown sdk {sdk!r}")


def skew_sdk_clock(seconds):
    """Makes the SDK's clock (event timestamps and sentAt) run `seconds` off ours."""

    class SkewedDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            real = datetime.datetime.now(tz) + datetime.timedelta(seconds=seconds)
            return cls.fromtimestamp(real.timestamp(), real.tzinfo)

    client_module.datetime = SkewedDatetime
    request_module.datetime = SkewedDatetime


if plan.get("clockSkewSeconds"):
    skew_sdk_clock(plan["clockSkewSeconds"])

errors = []
options = {
    "host": plan["host"],
    "max_retries": 1,
    "timeout": 5,
    "upload_interval": 0.1,
    "on_error": lambda err, batch: errors.append(f"{err!r} ({len(batch)} messages)"),
}
if "gzip" in plan:
    options["gzip"] = plan["gzip"]
client = Client(plan["writeKey"], **options)


def extras():
    # fresh copies: both SDKs write into the context dict they are given
    return {"context": copy.deepcopy(plan["context"]), "integrations": copy.deepcopy(plan["integrations"])}


user = plan["userId"]
results = {
    "identify": client.identify(user, plan["identifyTraits"], **extras()),
    "track": client.track(user, plan["event"], plan["trackProperties"], **extras()),
    "page": client.page(user, plan["pageCategory"], plan["pageName"], plan["pageProperties"], **extras()),
    "screen": client.screen(user, plan["screenCategory"], plan["screenName"], plan["screenProperties"], **extras()),
    "group": client.group(user, plan["groupId"], plan["groupTraits"], **extras()),
    "alias": client.alias(plan["previousId"], user, **extras()),
}
client.flush()
client.shutdown()

sent = {}
for call, (queued, message) in results.items():
    if not queued:
        errors.append(f"{call} was not queued")
    sent[call] = message
print(json.dumps({"sent": sent, "errors": errors}, default=str))
