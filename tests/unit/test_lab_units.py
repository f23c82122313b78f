"""Lab pieces that need no root: detail-file parsing, FreeRADIUS users rendering, state records."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab.aaa import _templates, parse_detail
from lab.topology import load_topology

DETAIL = """Wed Nov 26 23:19:04 2026
\tAcct-Status-Type = Start
\tUser-Name = "user002"
\tAcct-Session-Id = "abc"
\tNAS-IP-Address = 10.255.0.1
\tTimestamp = 1795734000

Wed Nov 26 23:19:05 2026
\tAcct-Status-Type = Stop
\tUser-Name = "user002"
\tAcct-Terminate-Cause = User-Request

"""


def test_parse_detail_gives_one_dict_per_record():
    records = parse_detail(DETAIL)
    assert [r["Acct-Status-Type"] for r in records] == ["Start", "Stop"]
    assert records[0]["User-Name"] == "user002"  # quotes removed
    assert records[0]["NAS-IP-Address"] == "10.255.0.1"
    assert records[0]["_time"] == "Wed Nov 26 23:19:04 2026"
    assert parse_detail("") == []


def test_users_file_has_check_and_reply_items():
    t = load_topology("default")
    text = _templates().get_template("authorize.j2").render(topology=t.name, users=t.aaa.users)
    assert '"user001"\tCleartext-Password := "pw-user001"\n' in text
    block = text[text.index('"radius-vr2"'):].split("\n\n")[0]
    assert '\tERX-Virtual-Router-Name = "vr2",' in block
    assert block.rstrip().endswith("ERX-Secondary-Wins = 10.50.0.138")  # last item: no comma


def test_quoting_escapes_quotes_and_backslashes():
    from lab.aaa import _quote
    assert _quote('a"b\\c') == '"a\\"b\\\\c"'


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNIPSEC_STATE_DIR", str(tmp_path))
    return tmp_path


def test_state_round_trip_and_dead_owner(state_dir):
    from lab.cleanup import clean_state
    from lab.state import LabState, ProcessRecord, load_state

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    record = ProcessRecord.of(finished.pid, "short-lived")
    finished.wait()
    assert record is not None and not record.is_alive()
    state = LabState(prefix="ut", owner=record, hosts={"uth": record}, netns_names={"utnone": None})
    state.save()
    loaded = load_state("ut")
    assert loaded == state
    assert not loaded.owner_alive()
    assert clean_state(loaded) == []  # nothing of it exists any more: nothing removed
    assert load_state("ut") is None


def test_a_running_owner_is_not_cleaned(state_dir):
    from lab.cleanup import clean_state
    from lab.state import LabRunningError, LabState, ProcessRecord

    me = ProcessRecord.of(os.getpid(), "this test")
    state = LabState(prefix="ur", owner=me)
    state.save()
    with pytest.raises(LabRunningError, match="dynipsec lab down --prefix ur"):
        clean_state(state)
    assert state.path.exists()
    state.remove()
