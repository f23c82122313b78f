"""Every RADIUS server down, against the daemon in the lab: dynipsec (one worker, so one
RADIUS client learns the server is dead) with the lab's FreeRADIUS as its only server.
A subscriber logged in before FreeRADIUS stops stays; the first login after the stop
waits for the timeouts and marks the server dead; the logins after it are refused in
well under a second with the reason "radius: no server answering (group lab)"."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from tests.lab.conftest import cli, client_for, node_name

pytestmark = pytest.mark.lab

NO_SERVER = "radius: no server answering (group lab)"
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def _seconds_from_asking_to_refusal(log: str, user: str) -> tuple[float, str]:
    """Seconds between the worker's 'asking AAA' and its AAA refusal for ``user``, and
    the refusal reason (log lines of responder.ikev1.engine and responder.aaa.base)."""
    asked = re.search(rf"^{STAMP} .*Xauth user '{user}', attempt 1: asking AAA", log, re.M)
    refused = re.search(rf"^{STAMP} .*AAA refuse for '{user}' via radius: (.*)$", log, re.M)
    assert asked and refused, log[-3000:]

    def at(match):
        return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return (at(refused) - at(asked)).total_seconds(), refused.group(2)


def test_radius_down_refuses_new_logins_fast_and_keeps_the_logged_in(
        lab, plan, gateway_factory, wait_until):
    with gateway_factory("dynipsec", "radius-faults", aaa="radius", workers=1) as gateway:
        with client_for(lab, plan, node_name(lab, 45), "strongswan", "main", "user045",
                        "vr1") as first:
            first.connect()
            first.wait_up(20)
            lab.radius.stop()
            try:
                refusals = {}
                for index in (46, 47, 48):
                    user = f"user{index:03d}"
                    log_start = gateway.log_path.stat().st_size
                    with client_for(lab, plan, node_name(lab, index), "strongswan", "main",
                                    user, "vr1") as client:
                        client.connect()
                        assert wait_until(
                            lambda: f"AAA refuse for '{user}'" in gateway.log_path.read_text(
                                errors="replace")[log_start:], 20), user
                    log = gateway.log_path.read_text(errors="replace")[log_start:]
                    refusals[user] = _seconds_from_asking_to_refusal(log, user)
                rows = cli(gateway, "show", "subscribers", "--json")
            finally:
                lab.radius.start()
    users = {row.get("user") for row in rows["rows"]}
    assert "user045" in users, rows
    discovery, reason = refusals["user046"]
    assert discovery >= 5.5 and reason.startswith("timeout: no RADIUS server answered")  # 3 x 2 s
    for user in ("user047", "user048"):
        seconds, reason = refusals[user]
        assert reason == NO_SERVER and seconds < 1.0, (user, seconds, reason)
