"""docs/subscribers.md names only what responder/subscriber.py defines: its ledger table
lists exactly the ResourceKind members, and every SubscriberEvent.X it names exists."""
from __future__ import annotations

import re
from pathlib import Path

from responder.subscriber import ResourceKind, SubscriberEvent

DOC = Path(__file__).resolve().parents[2] / "docs" / "subscribers.md"


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_ledger_table_lists_every_resource_kind_once():
    rows = table_rows(DOC.read_text(), "| kind |")
    named = [re.fullmatch(r"`ResourceKind\.(\w+)`", row[0]).group(1) for row in rows]
    assert sorted(named) == sorted(kind.name for kind in ResourceKind)


def test_every_subscriber_event_the_doc_names_exists():
    named = set(re.findall(r"SubscriberEvent\.(\w+)", DOC.read_text()))
    assert named, "the doc names no SubscriberEvent"
    assert named <= set(SubscriberEvent.__members__), named - set(SubscriberEvent.__members__)


def test_the_doc_does_not_use_the_old_event_alias():
    assert not re.search(r"(?<![\w.])Event\.[A-Z]", DOC.read_text())
