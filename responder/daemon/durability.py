"""What the supervisor does so that a crash loses nothing: its state directory, the
durable accountant, Accounting-On/Off, and the removal of a crashed run's interfaces.

The state directory is ``state_dir`` or, by default, the control socket's path with the
suffix ``.state`` (``/run/dynipsec/control.state``): one per daemon, since no two daemons
share a control socket (two daemons sharing a journal would send each other's records). It
holds ``boot-count`` (the per-start part of every Acct-Session-Id),
``accounting.journal`` and ``accounting.dead`` (responder/aaa/journal.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

from responder.aaa.accounting import Accountant, AccountingSender, Attributes, StatusType
from responder.aaa.journal import AccountingJournal, DeadLetters
from responder.aaa.radius import RadiusBusyError, RadiusNoServer
from responder.config.model import ResponderConfig
from responder.netif import remove_stale_interfaces

log = logging.getLogger(__name__)

JOURNAL_FILE = "accounting.journal"
DEAD_LETTER_FILE = "accounting.dead"


def state_directory(cfg: ResponderConfig) -> Path:
    if cfg.state_dir is not None:
        return Path(cfg.state_dir)
    return Path(cfg.control.socket).with_suffix(".state")


def build_accountant(cfg: ResponderConfig, sender: AccountingSender) -> Accountant:
    """The accountant with its journal (undelivered records of an earlier run queued)."""
    accounting = cfg.aaa.accounting
    state = state_directory(cfg)
    journal = AccountingJournal(accounting.journal or state / JOURNAL_FILE,
                                fsync=accounting.fsync)
    return Accountant(sender, group=accounting.server_group, journal=journal,
                      dead_letters=DeadLetters(accounting.dead_letters or state / DEAD_LETTER_FILE),
                      max_attempts=accounting.max_attempts, max_age=accounting.max_age,
                      unsent_errors=(RadiusNoServer, RadiusBusyError))


def nas_attributes(cfg: ResponderConfig) -> Attributes:
    radius = cfg.aaa.radius
    attrs: Attributes = {}
    if radius is not None and radius.nas_ip:
        attrs["NAS-IP-Address"] = str(radius.nas_ip)
    if radius is not None and radius.nas_identifier:
        attrs["NAS-Identifier"] = radius.nas_identifier
    return attrs


def accounting_on(accountant: Accountant, cfg: ResponderConfig, boot_id: str) -> None:
    """RFC 2866 Accounting-On: the server closes the sessions a crashed run left open.
    Queued after the replayed records, so those arrive first."""
    accountant.nas_status(StatusType.ACCOUNTING_ON, boot_id, nas_attributes(cfg))


def accounting_off(accountant: Accountant, cfg: ResponderConfig, boot_id: str) -> None:
    """RFC 2866 Accounting-Off at a clean stop, after every subscriber's Stop."""
    accountant.nas_status(StatusType.ACCOUNTING_OFF, boot_id, nas_attributes(cfg))


def remove_leftover_interfaces(cfg: ResponderConfig) -> int:
    """Before any worker starts: the daemon-named TUN devices left in the VR namespaces
    by a crashed run go (logged with a count). Returns how many went."""
    prefixes: dict[str, set[str]] = {}
    for vr in cfg.vrs.values():
        prefixes.setdefault(vr.netns, set()).add(vr.interface_prefix)
    try:
        found = remove_stale_interfaces(prefixes)
    except OSError as exc:
        log.error("leftover interfaces not checked: %s", exc)
        return 0
    total = 0
    for cleanup in found:
        if cleanup.interfaces:
            total += len(cleanup.interfaces)
            log.warning("VR %s: %d interfaces and %d access routes of an earlier run removed "
                        "(%s)", cleanup.vr, len(cleanup.interfaces), cleanup.routes,
                        ", ".join(cleanup.interfaces))
    log.info("start-up cleanup: %d leftover interfaces removed", total)
    return total
