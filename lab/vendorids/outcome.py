"""What one vendor-ID case showed: the `Outcome` record and the comparison.

The same record holds an expectation (from cases.yaml), what the in-memory run
observed (memory.py) and what a lab run observed from its capture, the
initiator's result and the gateway's state (lab.py): nothing in it says how it
was observed. Fields are named with dots as in the case table
(``dpd.echoed``, ``natt.natd``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["FIELDS", "Outcome", "compare", "with_changes"]

#: case-table name -> Outcome attribute
_ATTRIBUTES = {
    "classification": "classification",
    "notify": "notify",
    "dpd.echoed": "dpd_echoed",
    "dpd.answered": "dpd_answered",
    "dpd.probes": "dpd_probes",
    "natt.version": "natt_version",
    "natt.natd": "natd_payload",
    "natt.encap": "encapsulation",
    "natt.floated": "floated",
    "unity": "unity_echoed",
    "fragmentation": "fragmentation_echoed",
    "responder_vids": "responder_vids",
    "alive": "alive",
}
FIELDS: tuple[str, ...] = tuple(_ATTRIBUTES)


@dataclass(frozen=True)
class Outcome:
    """One case's answer.

    classification: ``dynamic`` (Xauth started and the login completed),
    ``static`` (phase 1 up without Xauth; a dynamic phase 2 was refused with
    `notify`) or ``refused`` (phase 1 refused with `notify`); anything else is a
    description of an unexpected course (it never equals an expectation).
    `natt_version` names the NAT-T vendor ID the responder answered with
    (``none`` without); `natd_payload` the payload type of its NAT-D (20, 130,
    None without); `encapsulation` the ESP encapsulation mode of the Quick Mode
    it accepted (None without one); `responder_vids` its vendor IDs in wire
    order, by catalogue name (``hex:...`` for unknown ones); `alive` that the
    responder still answered after the case.
    """

    classification: str
    notify: str | None
    dpd_echoed: bool
    dpd_answered: bool
    dpd_probes: bool
    natt_version: str
    natd_payload: int | None
    encapsulation: int | None
    floated: bool
    unity_echoed: bool
    fragmentation_echoed: bool
    responder_vids: tuple[str, ...]
    alive: bool

    def get(self, name: str) -> Any:
        return getattr(self, _ATTRIBUTES[name])

    def as_table(self) -> dict[str, Any]:
        """Case-table names -> values (JSON-friendly)."""
        return {name: _plain(self.get(name)) for name in FIELDS}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def with_changes(outcome: Outcome, changes: dict[str, Any]) -> Outcome:
    """A copy with some case-table fields replaced (e.g. strongSwan's known differences)."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise KeyError(f"not outcome fields: {', '.join(unknown)}")
    values = {_ATTRIBUTES[name]: tuple(value) if isinstance(value, list) else value
              for name, value in changes.items()}
    return dataclasses.replace(outcome, **values)


def compare(expected: Outcome, observed: Outcome) -> list[str]:
    """One line per field that differs, in table order; empty when they agree."""
    return [f"{name}: expected {_show(expected.get(name))}, observed {_show(observed.get(name))}"
            for name in FIELDS if expected.get(name) != observed.get(name)]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
