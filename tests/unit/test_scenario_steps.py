"""Scenario steps that act on the gateway (reload, RADIUS Disconnect/CoA) against stand-ins:
what they send, and which answers make them fail with a one-line reason."""
from __future__ import annotations

import types

import pytest

from clients.process import DaemonError
from lab.gateways.dynipsec import DynipsecDaemon, render_config
from lab.gateways.plan import plan_from_topology
from lab.scenario_engine import (StepFailed, _radclient_summary, merge_scenario_config,
                                 step_radius, step_reload)
from lab.scenario_spec import RadiusStep, ReloadStep
from lab.topology import load_topology

NAK_OUTPUT = """Sent CoA-Request Id 77 from 0.0.0.0:44556 to 10.255.0.1:3799 length 39
\tUser-Name = "user025"
\tSession-Timeout = 60
Received CoA-NAK Id 77 from 10.255.0.1:3799 to 10.255.0.2:44556 length 26
\tError-Cause = Session-Context-Not-Found
(0) -: Expected CoA-ACK got CoA-NAK
"""
ACK_OUTPUT = """Sent CoA-Request Id 5 from 0.0.0.0:1 to 10.255.0.1:3799 length 39
\tUser-Name = "user022"
Received CoA-ACK Id 5 from 10.255.0.1:3799 to 10.255.0.2:1 length 20
"""


@pytest.fixture
def rendered(tmp_path) -> dict:
    plan = plan_from_topology(load_topology("default"))
    return render_config(plan, control_socket=str(tmp_path / "control.sock"))


# -- merging a step's configuration ----------------------------------------------------------
def test_a_mapping_for_tunnel_profiles_changes_one_profile_by_name(rendered):
    merged = merge_scenario_config(rendered, {
        "tunnel_profiles": {"vr1": {"mode_config": {"banner": "after"}}},
        "licenses": {"subscriber": 4}})
    profiles = {p["name"]: p for p in merged["tunnel_profiles"]}
    assert profiles["vr1"]["mode_config"]["banner"] == "after"
    assert profiles["vr1"]["mode_config"]["dns"] == [p for p in rendered["tunnel_profiles"]
                                                     if p["name"] == "vr1"][0]["mode_config"]["dns"]
    assert profiles["vr2"] == [p for p in rendered["tunnel_profiles"] if p["name"] == "vr2"][0]
    assert merged["licenses"] == {"ipsec_tunnel": 1000, "subscriber": 4}
    assert rendered["licenses"]["subscriber"] == 1000, "the base must not change"


def test_a_list_still_replaces_a_list(rendered):
    merged = merge_scenario_config(rendered, {"listen": [{"address": "198.18.0.1"}]})
    assert merged["listen"] == [{"address": "198.18.0.1"}]


def test_an_unknown_profile_name_is_one_line(rendered):
    with pytest.raises(StepFailed, match=r"^reload: no tunnel_profiles entry 'vr9' \(entries: vr1, vr2\)$"):
        merge_scenario_config(rendered, {"tunnel_profiles": {"vr9": {"vr": "vr1"}}})


def test_the_merged_banner_is_a_valid_responder_configuration(rendered, tmp_path):
    daemon = DynipsecDaemon(None, tmp_path, merge_scenario_config(
        rendered, {"tunnel_profiles": {"vr2": {"mode_config": {"banner": "new"}}}}))
    daemon.build_config()
    daemon.check_config()


# -- the reload step -------------------------------------------------------------------------
class FakeDaemon:
    def __init__(self, config: dict, refuse: str | None = None):
        self.config = config
        self.refuse = refuse
        self.written: list[dict] = []

    def build_config(self) -> None:
        self.written.append(self.config)

    def check_config(self) -> None:
        if self.refuse:
            raise DaemonError(f"the rendered responder configuration is refused:\n{self.refuse}")


def reload_context(answer: dict, refuse: str | None = None):
    daemon = FakeDaemon({"licenses": {"subscriber": 3}}, refuse)
    sent = []

    def request(req, timeout=15.0):
        sent.append(req)
        return answer

    gateway = types.SimpleNamespace(daemon=daemon, request=request)
    return types.SimpleNamespace(gateway=gateway), daemon, sent


RELOAD = ReloadStep(do="reload", config={"licenses": {"subscriber": 4}})


def test_reload_writes_the_change_and_reports_what_applied():
    ctx, daemon, sent = reload_context({"ok": True, "reloaded": True,
                                        "applied": ["licenses.subscriber"], "restart_needed": {},
                                        "workers": [{"ok": True}, {"ok": True}]})
    assert step_reload(ctx, RELOAD) == "reloaded: licenses.subscriber"
    assert daemon.written[-1] == {"licenses": {"subscriber": 4}}
    assert sent == [{"cmd": "reload"}]


@pytest.mark.parametrize("answer,reason", [
    ({"ok": True, "reloaded": False, "errors": ["x.yaml: licenses: bad"]},
     "reload: refused: x.yaml: licenses: bad"),
    ({"ok": True, "reloaded": True, "applied": [], "workers": [],
      "restart_needed": {"workers": "the worker count ..."}},
     "reload: workers needs a restart (the worker count ...)"),
    ({"ok": True, "reloaded": True, "applied": ["licenses.subscriber"], "restart_needed": {},
      "workers": [{"ok": True}, {"ok": False, "error": "boom"}]},
     "reload: a worker did not reload: boom"),
], ids=["refused", "restart-needed", "worker-failed"])
def test_reload_fails_when_the_change_does_not_apply(answer, reason):
    ctx, _, _ = reload_context(answer)
    with pytest.raises(StepFailed) as info:
        step_reload(ctx, RELOAD)
    assert str(info.value) == reason


def test_a_refused_configuration_is_not_sent_and_the_file_is_restored():
    ctx, daemon, sent = reload_context({}, refuse="responder.yaml: licenses.subscriber: bad")
    with pytest.raises(StepFailed, match=r"^reload: responder.yaml: licenses.subscriber: bad$"):
        step_reload(ctx, RELOAD)
    assert sent == []
    assert daemon.config == {"licenses": {"subscriber": 3}}
    assert daemon.written[-1] == {"licenses": {"subscriber": 3}}


# -- the RADIUS steps ------------------------------------------------------------------------
def radius_context(output: str | Exception):
    calls = []

    def sender(kind):
        def send(**kwargs):
            calls.append((kind, kwargs))
            if isinstance(output, Exception):
                raise output
            return output
        return send

    lab = types.SimpleNamespace(aaa_coa=sender("coa"), aaa_disconnect=sender("disconnect"))
    live = types.SimpleNamespace(spec=types.SimpleNamespace(user="user022"))
    ctx = types.SimpleNamespace(lab=lab, live=lambda name: live)
    return ctx, calls


def test_a_coa_goes_to_the_labs_coa_sender_with_the_users_name():
    ctx, calls = radius_context(ACK_OUTPUT)
    step = RadiusStep(do="radius_coa", client="c", attributes={"Session-Timeout": "1"},
                      answer="CoA-ACK")
    assert step_radius(ctx, step).startswith("Received CoA-ACK Id 5")
    assert calls == [("coa", {"user": "user022", "extra": {"Session-Timeout": "1"}})]


def test_an_unexpected_answer_names_what_came_back():
    ctx, _ = radius_context(NAK_OUTPUT)
    step = RadiusStep(do="radius_coa", client="c", answer="CoA-ACK")
    with pytest.raises(StepFailed) as info:
        step_radius(ctx, step)
    assert "Received CoA-NAK Id 77" in str(info.value)
    assert "Error-Cause = Session-Context-Not-Found" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_lab_without_aaa_is_a_step_failure():
    ctx, _ = radius_context(RuntimeError("FreeRADIUS is not running in this lab"))
    step = RadiusStep(do="radius_disconnect", client="c")
    with pytest.raises(StepFailed, match="^radius_disconnect: FreeRADIUS is not running"):
        step_radius(ctx, step)


def test_radclient_summary():
    assert _radclient_summary(NAK_OUTPUT) == (
        "Received CoA-NAK Id 77 from 10.255.0.1:3799 to 10.255.0.2:44556 length 26; "
        "Error-Cause = Session-Context-Not-Found")
    assert _radclient_summary("(0) No reply from server for ID 12\n") == \
        "(0) No reply from server for ID 12"
    assert _radclient_summary("") == "no output"
