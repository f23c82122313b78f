"""Every RADIUS server down, against the daemon in the lab: dynipsec (one worker, so one
RADIUS client learns the server is dead) with the lab's FreeRADIUS as its only server.
A subscriber logged in before FreeRADIUS stops stays; the first login after the stop
waits for the timeouts and marks the server dead; the logins after it are refused in
well under a second with the reason "radius: no server answering (group lab)". AAA
unavailable is final for the login: one Xauth round each (no re-prompt), counted as
aaa_unavailable; ``show statistics`` shows the worker's RADIUS client counters and the
DAE counters (a Disconnect-Request for nobody: NAK 503)."""
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


def _xauth_rounds(log: str, user: str) -> int:
    return len(re.findall(rf"Xauth user '{user}', attempt \d+: asking AAA", log))


def _torn_down(gateway, log_start: int, user: str) -> bool:
    log = gateway.log_path.read_text(errors="replace")[log_start:]
    return re.search(rf"subscriber \d+ \({user}\) teardown: auth-failed", log) is not None


def test_radius_down_refuses_new_logins_fast_and_keeps_the_logged_in(
        lab, plan, gateway_factory, wait_until):
    with gateway_factory("dynipsec", "radius-faults", aaa="radius", workers=1) as gateway:
        with client_for(lab, plan, node_name(lab, 45), "strongswan", "main", "user045",
                        "vr1") as first:
            first.connect()
            first.wait_up(20)
            lab.radius.stop()
            try:
                refusals, rounds = {}, {}
                for index in (46, 47, 48):
                    user = f"user{index:03d}"
                    log_start = gateway.log_path.stat().st_size
                    with client_for(lab, plan, node_name(lab, index), "strongswan", "main",
                                    user, "vr1") as client:
                        client.connect()
                        assert wait_until(
                            lambda: f"AAA refuse for '{user}'" in gateway.log_path.read_text(
                                errors="replace")[log_start:], 20), user
                        # the login's end (after 3 rounds if Xauth re-prompted)
                        assert wait_until(lambda: _torn_down(gateway, log_start, user), 20)
                    log = gateway.log_path.read_text(errors="replace")[log_start:]
                    refusals[user] = _seconds_from_asking_to_refusal(log, user)
                    rounds[user] = _xauth_rounds(log, user)
                    assert f"aaa unavailable: {refusals[user][1]}" in log, log[-3000:]
                rows = cli(gateway, "show", "subscribers", "--json")
                stats = cli(gateway, "show", "statistics", "--json")
                # DAE needs no RADIUS server: a Disconnect for nobody is NAKed 503
                nak = lab.aaa_disconnect(user="user999")
                dae = cli(gateway, "show", "statistics", "--json")["dae"]
            finally:
                lab.radius.start()
    users = {row.get("user") for row in rows["rows"]}
    assert "user045" in users, rows
    discovery, reason = refusals["user046"]
    assert discovery >= 5.5 and reason.startswith("timeout: no RADIUS server answered")  # 3 x 2 s
    for user in ("user047", "user048"):
        seconds, reason = refusals[user]
        assert reason == NO_SERVER and seconds < 1.0, (user, seconds, reason)
    assert rounds == {"user046": 1, "user047": 1, "user048": 1}
    (worker,) = stats["workers"]
    assert worker["refused"].get("aaa_unavailable") == 3, worker["refused"]
    radius = worker["radius"]
    (server,) = [row for row in radius["servers"] if row["group"] == "lab"]
    # user045's request, user046's that timed out (then every server dead)
    assert server["requests"] == 2 and server["timeouts"] == 1, server
    assert server["dead_marks"] == 1 and server["dead"] is True, server
    assert server["dropped_no_message_authenticator"] == 0, server
    assert radius["refused_no_server"]["lab"] == 2, radius
    assert "Disconnect-NAK" in nak, nak
    assert dae["requests"]["disconnect"] == 1 and dae["acks"]["disconnect"] == 0, dae
    assert dae["naks"]["disconnect"] == {"503": 1}, dae
