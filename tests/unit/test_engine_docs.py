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


def test_design_note_shows_the_dispatch_table_as_the_code_has_it():
    from responder.ikev1.engine import EXCHANGE_ROUTES, REGISTERED_ROUTE
    from responder.ikev1.enums import ExchangeType

    text = DOC.read_text()
    for exchange, route in EXCHANGE_ROUTES.items():
        row = (f"| {ExchangeType(exchange).name} | `{route.handle.__name__}` | "
               f"{route.phase1 or '-'} | {'yes' if route.needs_phase1 else 'no'} |")
        assert row in text, row
    assert (f"| (registered: TRANSACTION) | `{REGISTERED_ROUTE.handle.__name__}` | - | "
            f"{'yes' if REGISTERED_ROUTE.needs_phase1 else 'no'} |") in text


def test_design_note_shows_the_phase1_tasks_as_the_code_has_them():
    from responder.ikev1.exchanges.phase1_tasks import TASKS

    text = DOC.read_text()
    for (exchange, step), tasks in TASKS.items():
        reads = ", ".join(t.name for t in tasks.reads) or "-"
        builds = ", ".join(t.name for t in tasks.builds) or "-"
        row = f"| {exchange} | {step} | {reads} | {builds} |"
        assert row in text, row


def test_every_phase1_task_step_is_a_message_of_its_exchange():
    from responder.ikev1.exchanges.phase1_tasks import TASKS

    tables = {t.exchange: t for t in (main_mode.TABLE, aggressive_mode.TABLE)}
    for exchange, step in TASKS:
        assert step in {event for _, event, _ in tables[exchange].rows()}, (exchange, step)
