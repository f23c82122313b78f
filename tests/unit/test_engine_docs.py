from pathlib import Path

from responder.ikev1.exchanges import aggressive_mode, informational, main_mode, quick_mode

DOC = Path(__file__).resolve().parents[2] / "docs" / "ikev1-engine.md"


def test_design_note_lists_every_state_transition():
    text = DOC.read_text()
    for table in (main_mode.TABLE, aggressive_mode.TABLE, quick_mode.TABLE,
                  informational.DPD_TABLE):
        assert f"### {table.exchange}" in text
        for state, event, new in table.rows():
            assert f"| {state} | {event} | {new} |" in text
