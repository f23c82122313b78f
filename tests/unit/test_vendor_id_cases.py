"""The vendor-ID case table (lab/vendorids/cases.yaml), run in memory.

One test per case: the project's initiator sends the case's vendor IDs to the
sans-I/O responder (configured like the lab's dynipsec gateway) and the
observed Outcome must equal the table's expectation. Then the table itself: the
loader's one-line errors, the catalogue against the responder's recognition
table, the strongSwan and vpnc fingerprints against the reference captures.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import yaml

from lab.vendorids.cases import DEFAULT_CASES, CaseFileError, load_cases, parse_cases
from lab.vendorids.craft import first_message_vids
from lab.vendorids.memory import run_case
from lab.vendorids.outcome import FIELDS, compare
from lab.vendorids.probe import responder_vid_facts
from responder.ikev1.message import Message
from responder.ikev1.payloads import VendorId
from responder.ikev1.vendor_ids import recognize

TABLE = load_cases()
VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(autouse=True)
def _quiet():
    # every refused phase 1 / Quick Mode logs a warning on both sides
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("case", TABLE.cases, ids=[case.id for case in TABLE.cases])
def test_case_in_memory(case):
    outcome, view = run_case(TABLE, case)
    problems = compare(case.expected(), outcome)
    assert not problems, f"{case.id}: {problems}\ninitiator saw: {view.summary()}"


def test_table_size_and_coverage():
    assert len(TABLE.cases) >= 40
    kinds = {case.expect.classification for case in TABLE.cases}
    assert kinds == {"dynamic", "static", "refused"}
    assert {case.mode for case in TABLE.cases} == {"main", "aggressive"}
    assert {case.auth for case in TABLE.cases} == {"psk", "xauth-psk"}
    assert any(case.nat for case in TABLE.cases) and not all(case.nat for case in TABLE.cases)
    versions = {case.expect.natt.version for case in TABLE.cases}
    assert versions == {"none", "rfc3947", "draft-03", "draft-02n", "draft-02", "draft-01",
                        "draft-00"}
    assert {case.expect.natt.encap for case in TABLE.cases} == {None, 1, 3, 61443}


@pytest.mark.parametrize("case", TABLE.cases, ids=[case.id for case in TABLE.cases])
def test_expectation_agrees_with_its_own_responder_vids(case):
    """unity / dpd.echoed / fragmentation / natt.version restate responder_vids:
    a table edit that changes one and not the other is a typo."""
    expected = case.expected()
    vids = tuple(TABLE.catalogue[name].hex for name in expected.responder_vids)
    facts = responder_vid_facts(vids)
    assert (expected.dpd_echoed, expected.unity_echoed, expected.fragmentation_echoed,
            expected.natt_version) == (facts["dpd"], facts["unity"], facts["fragmentation"],
                                       facts["natt"])
    assert (expected.natd_payload is None) == (expected.natt_version == "none")


# ------------------------------------------------------------------ the catalogue
@pytest.mark.parametrize("name", sorted(TABLE.catalogue))
def test_catalogue_matches_the_responder_table(name):
    entry = TABLE.catalogue[name]
    known = recognize(entry.hex)
    assert (known.name if known else None) == entry.responder, name


def _capture_vids(capture: str) -> list[str]:
    """The VIDs of the capture's first packet (the client's msg 1)."""
    first = json.loads((VECTORS / f"{capture}.json").read_text())["packets"][0]
    message = Message.parse(bytes.fromhex(first["data_hex"]))
    return [TABLE.name_of(v.data) for v in message.payloads_of(VendorId)]


@pytest.mark.parametrize("capture, case_id", [
    ("ss-main", "strongswan-5.9-main"),
    ("ss-aggr", "strongswan-5.9-aggressive"),
    ("vpnc-aggr", "vpnc-0.5.3"),
])
def test_real_client_fingerprints_are_the_captured_ones(capture, case_id):
    case = TABLE.case(case_id)
    sent = [TABLE.name_of(v) for v in first_message_vids(TABLE, case)]
    assert sent == _capture_vids(capture)


def test_vpnc_fingerprint_has_its_message_3_vids():
    packet = json.loads((VECTORS / "vpnc-aggr.json").read_text())["packets"][2]
    message = Message.parse(bytes.fromhex(packet["data_hex"]))
    decrypted = message.payloads_from_plaintext(bytes.fromhex(packet["plaintext_hex"]))
    am3 = [p for p in TABLE.clients["vpnc-0.5.3"].send if p.message == "am3"]
    assert [item.name for p in am3 for item in p.vendor_ids] == \
        [TABLE.name_of(v.data) for v in decrypted.payloads_of(VendorId)]


def test_generated_vids_are_deterministic_and_unknown():
    case = TABLE.case("unknown-30")
    item = next(i for p in TABLE.placements(case) for i in p.vendor_ids if i.kind == "random")
    values = TABLE.vid_bytes(case, item)
    assert len(values) == 30 and len(set(values)) == 30
    assert values == TABLE.vid_bytes(case, item)
    assert all(recognize(v) is None for v in values)
    sized = TABLE.case("vid-4000-bytes")
    big = next(i for p in TABLE.placements(sized) for i in p.vendor_ids if i.kind == "size")
    assert TABLE.vid_bytes(sized, big) == [b"\xa5" * 4000]


def test_strongswan_differences_name_outcome_fields():
    for case in TABLE.cases:
        if case.strongswan is not None:
            assert set(case.strongswan.differs) <= set(FIELDS)
            assert case.expected("strongswan") != case.expected("dynipsec")


# ------------------------------------------------------------------ loader errors
def _raw() -> dict:
    return yaml.safe_load(DEFAULT_CASES.read_text())


def _errors(raw: dict) -> list[str]:
    with pytest.raises(CaseFileError) as info:
        parse_cases(raw, DEFAULT_CASES)
    assert str(info.value) == "\n".join(info.value.problems)
    assert all("\n" not in line for line in info.value.problems)
    return info.value.problems


def _case(raw: dict, case_id: str) -> dict:
    return next(c for c in raw["cases"] if c["id"] == case_id)


def test_the_shipped_table_loads():
    assert parse_cases(_raw(), DEFAULT_CASES).cases == TABLE.cases


def test_bad_field_value_is_one_line_naming_case_and_field():
    raw = _raw()
    case = _case(raw, "vpnc-0.5.3")
    case["expect"] = copy.deepcopy(case["expect"])
    case["expect"]["natt"]["natd"] = 21
    [line] = _errors(raw)
    assert line.startswith("cases.yaml: case 'vpnc-0.5.3' expect.natt.natd: ")
    assert "20" in line and "130" in line


def test_unknown_key_is_refused():
    raw = _raw()
    _case(raw, "windows-l2tp")["expected"] = {}
    assert _errors(raw) == ["cases.yaml: case 'windows-l2tp' expected: unknown key"]


def test_unknown_catalogue_name_and_fingerprint():
    raw = _raw()
    case = _case(raw, "dpd-absent")
    case["send"] = [{"vendor_ids": ["xauth", "dpd-v9"]}]
    case["client"] = "nokia-9000"
    assert _errors(raw) == [
        "cases.yaml: case 'dpd-absent' client: no client fingerprint 'nokia-9000'",
        "cases.yaml: case 'dpd-absent' send.0.vendor_ids.1: no vendor ID 'dpd-v9' in the "
        "catalogue"]


def test_bad_vendor_id_item_and_catalogue_hex():
    raw = _raw()
    _case(raw, "zero-length-vid")["send"] = [{"vendor_ids": [{"size": -1}]}]
    raw["vendor_ids"]["xauth"] = {"hex": "09002689DFD6B7", "source": "x", "responder": "XAUTH"}
    raw["vendor_ids"]["dpd"] = dict(raw["vendor_ids"]["dpd"], hex="AFCAD7136")
    problems = _errors(raw)
    assert problems == [
        "cases.yaml: vendor ID 'dpd' hex: 'AFCAD7136' is not a hex string of whole bytes"]
    raw["vendor_ids"]["dpd"] = _raw()["vendor_ids"]["dpd"]
    assert _errors(raw) == [
        "cases.yaml: case 'zero-length-vid' send.0.vendor_ids.0: size must be an integer "
        "0..65531, not -1"]


def test_cross_checks():
    raw = _raw()
    _case(raw, "strongswan-5.9-main")["send"] = [
        {"message": "am3", "vendor_ids": ["xauth"]}]
    _case(raw, "bare-ikev1")["strongswan"] = {"differs": {"natt.flavour": "x"},
                                              "why": ["unity-always", "moon-phase"]}
    _case(raw, "kame-racoon")["expect"] = dict(_case(raw, "kame-racoon")["expect"],
                                               responder_vids=["xauth", "frag"])
    raw["cases"].append(dict(_case(raw, "bare-ikev1")))
    problems = _errors(raw)
    assert problems == [
        "cases.yaml: case 'strongswan-5.9-main' send.0.message: am3 needs mode aggressive",
        "cases.yaml: case 'kame-racoon' expect.responder_vids.1: no vendor ID 'frag' in the "
        "catalogue (unknown ones are written hex:...)",
        "cases.yaml: case 'bare-ikev1' strongswan.differs.natt.flavour: not an outcome field "
        f"({', '.join(FIELDS)})",
        "cases.yaml: case 'bare-ikev1' strongswan.why: no reason 'moon-phase' in the reasons "
        "table",
        "cases.yaml: case 'bare-ikev1' strongswan.differs.natt.flavour: not an outcome field "
        f"({', '.join(FIELDS)})",
        "cases.yaml: case 'bare-ikev1' strongswan.why: no reason 'moon-phase' in the reasons "
        "table",
        "cases.yaml: case 'bare-ikev1' id: used twice"]


def test_not_yaml_and_missing_table(tmp_path):
    broken = tmp_path / "cases.yaml"
    broken.write_text("cases: [\n")
    with pytest.raises(CaseFileError) as info:
        load_cases(broken)
    [line] = info.value.problems
    assert line.startswith("cases.yaml: not YAML: ")
    raw = _raw()
    del raw["clients"]
    assert _errors(raw) == ["cases.yaml: clients: Field required"]
