"""The vendor-ID case table (cases.yaml): loading, validation, the VIDs a case sends.

The file has three tables (docs/vendor-ids.md describes every field):

* ``vendor_ids``: the catalogue, name -> hex value, its source and, where the
  responder's own table (responder/ikev1/vendor_ids.py) knows it, that name;
* ``clients``: fingerprints, name -> the vendor IDs a client sends and where,
  its phase 1 proposals;
* ``cases``: one run each: a client fingerprint (or its own VIDs), mode, auth
  method, NAT on the path, and the expected outcome (outcome.Outcome), with
  the reference strongSwan gateway's known differences beside it.

Every mistake is one line naming the case (or catalogue entry) and the field:
``cases.yaml: case 'vpnc-0.5.3' expect.natt.natd: Input should be 20 or 130``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from lab.vendorids.outcome import FIELDS, Outcome, with_changes

__all__ = [
    "DEFAULT_CASES",
    "CaseFileError",
    "CatalogueEntry",
    "Client",
    "Placement",
    "Case",
    "CaseTable",
    "load_cases",
    "parse_cases",
]

DEFAULT_CASES = Path(__file__).with_name("cases.yaml")
GATEWAYS = ("dynipsec", "strongswan")


class CaseFileError(ValueError):
    """The case file is wrong; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not fall back silently to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", value):
        raise ValueError(f"{value!r} is not a hex string of whole bytes")
    return bytes.fromhex(value)


HexBytes = Annotated[bytes, BeforeValidator(_hex)]


# ------------------------------------------------------------------ VID items
@dataclass(frozen=True)
class VidItem:
    """One entry of a `vendor_ids:` list, resolved to bytes by `CaseTable.vid_bytes`.

    kind ``name`` (a catalogue name), ``hex`` (raw bytes), ``random`` (`count`
    unknown 16-byte VIDs derived from the case id), ``size`` (one VID of
    `count` bytes of `fill`), ``derived`` (catalogue VID `of`, cut to
    `truncate` bytes and/or with `append` after it), each `times` times.
    """

    kind: str
    name: str | None = None
    data: bytes = b""
    count: int = 0
    fill: int = 0
    truncate: int | None = None
    times: int = 1

    def describe(self) -> str:
        times = f" x{self.times}" if self.times > 1 else ""
        if self.kind == "name":
            return f"{self.name}{times}"
        if self.kind == "hex":
            return f"hex:{self.data.hex()}{times}"
        if self.kind == "random":
            return f"{self.count} random unknown{times}"
        if self.kind == "size":
            return f"{self.count}-byte VID{times}"
        cut = f"[:{self.truncate}]" if self.truncate is not None else ""
        tail = f"+{self.data.hex()}" if self.data else ""
        return f"{self.name}{cut}{tail}{times}"


_ITEM_KEYS = {"hex", "random", "size", "fill", "of", "truncate", "append", "times"}


def _vid_item(value: Any) -> VidItem:
    if isinstance(value, str):
        return VidItem("name", name=value)
    if not isinstance(value, dict) or not value:
        raise ValueError("a vendor ID is a catalogue name or a mapping "
                         "(hex / random / size / of)")
    unknown = sorted(set(value) - _ITEM_KEYS)
    if unknown:
        raise ValueError(f"unknown vendor ID key(s) {', '.join(unknown)}")
    times = _count(value.get("times", 1), "times", minimum=1)
    if "hex" in value:
        return VidItem("hex", data=_hex(value["hex"]), times=times)
    if "random" in value:
        return VidItem("random", count=_count(value["random"], "random", minimum=1), times=times)
    if "size" in value:
        fill = _hex(value.get("fill", "00"))
        if len(fill) != 1:
            raise ValueError("fill is one byte in hex, e.g. 'ff'")
        return VidItem("size", count=_count(value["size"], "size", minimum=0, maximum=65531),
                       fill=fill[0], times=times)
    if "of" in value:
        if not isinstance(value["of"], str):
            raise ValueError("of names a catalogue vendor ID")
        truncate = value.get("truncate")
        if truncate is not None:
            truncate = _count(truncate, "truncate", minimum=0)
        append = _hex(value.get("append", ""))
        if truncate is None and not append and times == 1:
            raise ValueError(f"{{of: {value['of']}}} changes nothing: give truncate, append "
                             f"or times")
        return VidItem("derived", name=value["of"], data=append, truncate=truncate, times=times)
    raise ValueError("a vendor ID mapping needs hex, random, size or of")


def _count(value: Any, what: str, *, minimum: int, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum \
            or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{what} must be an integer {bound}, not {value!r}")
    return value


Vid = Annotated[VidItem, BeforeValidator(_vid_item)]


# ------------------------------------------------------------------ tables
class CatalogueEntry(Strict):
    hex: HexBytes
    source: str = Field(min_length=1)
    #: the responder's table entry (responder/ikev1/vendor_ids.py) that recognises it
    responder: str | None = None


class Placement(Strict):
    """Vendor IDs in one message. `message`: ``first`` is Main Mode msg 1 or
    Aggressive Mode msg 1 (by the case's mode), ``am3`` Aggressive Mode msg 3.
    `order` relative to the other payloads of that message: ``last`` (after
    everything: what clients do), ``before-sa`` (ahead of the SA payload),
    ``after-sa`` (right after it, before KE/Nonce/ID in AM msg 1), ``around-sa``
    (the first half before the SA payload, the rest after it)."""

    message: Literal["first", "am3"] = "first"
    order: Literal["last", "before-sa", "after-sa", "around-sa"] = "last"
    vendor_ids: list[Vid] = Field(min_length=1)


IkeProposalText = Annotated[str, Field(pattern=r"^[a-z0-9]+-[a-z0-9]+-[a-z0-9]+$")]


class Client(Strict):
    description: str = Field(min_length=1)
    source: str = Field(min_length=1)
    #: empty: a peer that sends no vendor ID
    send: list[Placement]
    ike: list[IkeProposalText] = Field(default=["aes256-sha256-modp2048"], min_length=1)


class DpdExpect(Strict):
    #: the responder's own VIDs include the RFC 3706 one
    echoed: bool
    #: our R-U-THERE got an R-U-THERE-ACK
    answered: bool
    #: the responder sent R-U-THERE after its DPD interval of silence
    probes: bool


class NattExpect(Strict):
    version: Literal["none", "rfc3947", "draft-03", "draft-02n", "draft-02", "draft-01",
                     "draft-00"]
    natd: Literal[20, 130] | None
    encap: Literal[1, 3, 61443] | None
    floated: bool


NotifyName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_-]*$")]


class Expect(Strict):
    classification: Literal["dynamic", "static", "refused"]
    notify: NotifyName | None = None
    dpd: DpdExpect
    natt: NattExpect
    unity: bool
    fragmentation: bool
    responder_vids: list[str]
    alive: bool = True

    def outcome(self) -> Outcome:
        return Outcome(
            classification=self.classification, notify=self.notify,
            dpd_echoed=self.dpd.echoed, dpd_answered=self.dpd.answered,
            dpd_probes=self.dpd.probes, natt_version=self.natt.version,
            natd_payload=self.natt.natd, encapsulation=self.natt.encap,
            floated=self.natt.floated, unity_echoed=self.unity,
            fragmentation_echoed=self.fragmentation,
            responder_vids=tuple(self.responder_vids), alive=self.alive)


class GatewayNote(Strict):
    """Where another gateway answers differently, and why (not a failure): `why`
    names entries of the file's `reasons` table."""

    differs: dict[str, Any] = Field(min_length=1)
    why: list[str] = Field(min_length=1)


class RealClient(Strict):
    """The real client that also runs the case in the lab, with its own default
    fingerprint, and where its lab configuration changes the answer."""

    name: Literal["strongswan", "vpnc"]
    differs: dict[str, Any] = Field(default_factory=dict)
    #: names in the file's `reasons` table
    why: list[str] = Field(default_factory=list)


CaseId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=48)]


class Case(Strict):
    id: CaseId
    description: str = Field(min_length=1)
    client: str
    mode: Literal["main", "aggressive"]
    auth: Literal["psk", "xauth-psk"]
    nat: bool = False
    #: None: the client fingerprint's vendor IDs
    send: list[Placement] | None = None
    #: None: the client fingerprint's proposals
    ike: list[IkeProposalText] | None = None
    #: in the lab the real client of that name also runs this case's fingerprint
    real_client: RealClient | None = None
    expect: Expect
    strongswan: GatewayNote | None = None

    def strongswan_why(self, reasons: dict[str, str]) -> str | None:
        """The explanation of strongSwan's differences, in words."""
        if self.strongswan is None:
            return None
        return "; ".join(reasons[name] for name in self.strongswan.why)

    def real_client_why(self, reasons: dict[str, str]) -> str | None:
        if self.real_client is None or not self.real_client.why:
            return None
        return "; ".join(reasons[name] for name in self.real_client.why)

    def expected(self, gateway: str = "dynipsec") -> Outcome:
        """The expected outcome on one gateway (dynipsec, or strongSwan with its notes)."""
        outcome = self.expect.outcome()
        if gateway == "strongswan" and self.strongswan is not None:
            outcome = with_changes(outcome, self.strongswan.differs)
        return outcome


class _File(Strict):
    reasons: dict[str, Annotated[str, Field(min_length=10)]] = Field(default_factory=dict)
    vendor_ids: dict[str, CatalogueEntry] = Field(min_length=1)
    clients: dict[str, Client] = Field(min_length=1)
    cases: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class CaseTable:
    catalogue: dict[str, CatalogueEntry]
    clients: dict[str, Client]
    #: why another gateway answers differently: name -> explanation
    reasons: dict[str, str]
    cases: tuple[Case, ...]
    path: Path

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(f"no case {case_id!r} in {self.path.name}")

    def placements(self, case: Case) -> list[Placement]:
        return list(case.send if case.send is not None else self.clients[case.client].send)

    def proposals(self, case: Case) -> list[str]:
        return list(case.ike if case.ike is not None else self.clients[case.client].ike)

    def vid_bytes(self, case: Case, item: VidItem) -> list[bytes]:
        """The vendor ID payload values one item stands for, in order."""
        if item.kind == "name":
            values = [self.catalogue[item.name].hex]
        elif item.kind == "hex":
            values = [item.data]
        elif item.kind == "random":
            values = [_random_vid(case.id, i) for i in range(item.count)]
        elif item.kind == "size":
            values = [bytes([item.fill]) * item.count]
        else:
            base = self.catalogue[item.name].hex
            if item.truncate is not None:
                base = base[:item.truncate]
            values = [base + item.data]
        return values * item.times

    def name_of(self, vid: bytes) -> str:
        """The catalogue name of a VID seen on the wire, else ``hex:...``."""
        for name, entry in self.catalogue.items():
            if entry.hex == vid:
                return name
        return f"hex:{vid.hex()}"


def _random_vid(case_id: str, index: int) -> bytes:
    # deterministic per case: a rerun sends the same bytes
    return hashlib.sha256(f"{case_id}/{index}".encode()).digest()[:16]


# ------------------------------------------------------------------ loading
def load_cases(path: Path | str = DEFAULT_CASES) -> CaseTable:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CaseFileError([f"{path.name}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise CaseFileError([f"{path.name}: not YAML: {' '.join(str(exc).split())}"]) from None
    return parse_cases(raw, path)


def parse_cases(raw: Any, path: Path = DEFAULT_CASES) -> CaseTable:
    """Validate a loaded case file; raises CaseFileError with every problem found."""
    where = path.name
    if not isinstance(raw, dict):
        raise CaseFileError([f"{where}: the file must be a mapping with vendor_ids, clients, "
                             f"cases"])
    try:
        top = _File.model_validate(raw)
    except ValidationError as exc:
        raise CaseFileError(_lines(where, exc, raw)) from None
    problems: list[str] = []
    cases: list[Case] = []
    for index, entry in enumerate(top.cases):
        label = f"case {entry.get('id', f'#{index + 1}')!r}" if isinstance(entry, dict) \
            else f"case #{index + 1}"
        try:
            case = Case.model_validate(entry)
        except ValidationError as exc:
            problems += [f"{where}: {label} {line}" for line in _error_lines(exc)]
            continue
        problems += [f"{where}: {label} {line}" for line in _references(top, case)]
        cases.append(case)
    problems += _client_references(where, top)
    problems += _duplicates(where, [case.id for case in cases])
    if problems:
        raise CaseFileError(problems)
    return CaseTable(dict(top.vendor_ids), dict(top.clients), dict(top.reasons), tuple(cases),
                     path)


def _lines(where: str, exc: ValidationError, raw: dict) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        if len(loc) >= 2 and loc[0] in ("vendor_ids", "clients"):
            label = "vendor ID" if loc[0] == "vendor_ids" else "client"
            field = ".".join(str(p) for p in loc[2:]) or "(entry)"
            lines.append(f"{where}: {label} {loc[1]!r} {field}: {_message(error)}")
        else:
            lines.append(f"{where}: {'.'.join(str(p) for p in loc) or '(file)'}: "
                         f"{_message(error)}")
    return lines


def _error_lines(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in error['loc']) or '(entry)'}: {_message(error)}"
            for error in exc.errors()]


def _message(error: dict) -> str:
    text = error["msg"]
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return text.removeprefix("Value error, ")


def _references(top: _File, case: Case) -> list[str]:
    problems = []
    if case.client not in top.clients:
        problems.append(f"client: no client fingerprint {case.client!r}")
    placements = case.send if case.send is not None else []
    for p_index, placement in enumerate(placements):
        if placement.message == "am3" and case.mode != "aggressive":
            problems.append(f"send.{p_index}.message: am3 needs mode aggressive")
        for v_index, item in enumerate(placement.vendor_ids):
            if item.name is not None and item.name not in top.vendor_ids:
                problems.append(f"send.{p_index}.vendor_ids.{v_index}: no vendor ID "
                                f"{item.name!r} in the catalogue")
    if case.send is None and case.client in top.clients and case.mode != "aggressive" \
            and any(p.message == "am3" for p in top.clients[case.client].send):
        problems.append(f"mode: client {case.client!r} sends VIDs in am3, the case must be "
                        f"aggressive or give its own send")
    for v_index, name in enumerate(case.expect.responder_vids):
        if name not in top.vendor_ids and not re.fullmatch(r"hex:(?:[0-9a-f]{2})+", name):
            problems.append(f"expect.responder_vids.{v_index}: no vendor ID {name!r} in the "
                            f"catalogue (unknown ones are written hex:...)")
    for where, note in (("strongswan", case.strongswan), ("real_client", case.real_client)):
        for key in (note.differs if note is not None else {}):
            if key not in FIELDS:
                problems.append(f"{where}.differs.{key}: not an outcome field "
                                f"({', '.join(FIELDS)})")
    for where, note in (("strongswan", case.strongswan), ("real_client", case.real_client)):
        for name in (note.why if note is not None else []):
            if name not in top.reasons:
                problems.append(f"{where}.why: no reason {name!r} in the reasons table")
    if case.real_client is not None and case.real_client.differs and not case.real_client.why:
        problems.append("real_client.why: say why the real client's answer differs")
    return problems


def _client_references(where: str, top: _File) -> list[str]:
    problems = []
    for name, client in top.clients.items():
        for p_index, placement in enumerate(client.send):
            for v_index, item in enumerate(placement.vendor_ids):
                if item.name is not None and item.name not in top.vendor_ids:
                    problems.append(f"{where}: client {name!r} send.{p_index}.vendor_ids."
                                    f"{v_index}: no vendor ID {item.name!r} in the catalogue")
    return problems


def _duplicates(where: str, ids: list[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for case_id in ids:
        if case_id in seen:
            problems.append(f"{where}: case {case_id!r} id: used twice")
        seen.add(case_id)
    return problems
