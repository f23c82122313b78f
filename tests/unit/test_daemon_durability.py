"""The supervisor's durability glue: where the state lives, the journaled accountant."""
from pathlib import Path

import yaml

from responder.aaa.accounting import StatusType
from responder.config import parse_config
from responder.daemon.durability import (accounting_off, accounting_on, build_accountant,
                                         state_directory)

MINIMAL = Path(__file__).parents[2] / "responder" / "examples" / "minimal.yaml"


def config(**top):
    data = yaml.safe_load(MINIMAL.read_text())
    data.update(top)
    return parse_config(data, base_dir=MINIMAL.parent)


class NoSender:
    async def send_accounting(self, attributes, created_at, group=None):
        raise TimeoutError("no server")


def test_default_state_directory_is_per_control_socket(tmp_path):
    """Daemons whose sockets share a directory (the lab's long paths go to one temporary
    directory) must not share a journal: each would send the other's records."""
    one = config(control={"socket": str(tmp_path / "dynipsec-aaa-control.sock")})
    two = config(control={"socket": str(tmp_path / "dynipsec-bbb-control.sock")})
    assert state_directory(one) != state_directory(two)
    assert state_directory(one).parent == tmp_path
    assert state_directory(config(state_dir=str(tmp_path / "s"))) == tmp_path / "s"


def test_accountant_journals_in_the_state_directory(tmp_path):
    cfg = config(state_dir=str(tmp_path / "state"))
    accountant = build_accountant(cfg, NoSender())
    accounting_on(accountant, cfg, "00000007")
    accounting_off(accountant, cfg, "00000007")
    assert [r.status for r in accountant._queue] == [StatusType.ACCOUNTING_ON,
                                                     StatusType.ACCOUNTING_OFF]
    replayed = build_accountant(cfg, NoSender())       # as after a crash
    assert replayed.stats.replayed == 2
    assert (tmp_path / "state" / "accounting.journal").stat().st_mode & 0o777 == 0o600
