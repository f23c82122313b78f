"""The daemon's log lines: text (default) or JSON (``logging.format: json``), and one
line per subscriber event.

Every process tags its lines (``sup``, ``w0``, ``w1``...). Subscriber events go through
:func:`subscriber_event`: one INFO line with the subscriber id that follows the
subscriber from phase 1 to teardown (``w<worker>-<id>``, the registry key ``0:17``
spelled for grep), the user once known, the event and its details::

    sub=w0-17 user=user001 event=phase1-up profile=vr1 peer=198.18.0.21:500 ...
    sub=w0-17 user=user001 event=logout cause=admin-logout

In JSON every line is one object: ``ts``, ``proc``, ``level``, ``logger``, ``msg`` and,
for subscriber events, ``sub``, ``user``, ``event`` and the details as keys.

Secrets: nothing here formats a password, PSK or RADIUS secret; the configuration
holds them as SecretStr (printed ``**********``). DEBUG may show more of a packet,
never a secret either.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["setup_logging", "subscriber_event", "sub_id", "JsonFormatter", "TextFormatter",
           "EVENT_LOGGER"]

EVENT_LOGGER = "responder.events"
_events = logging.getLogger(EVENT_LOGGER)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def sub_id(key: str | None) -> str:
    """``0:17`` (worker:subscriber) -> ``w0-17``; ``1.2:5`` (worker 1 in its
    third generation) -> ``w1.2-5``."""
    if not key:
        return "-"
    worker, _, number = str(key).partition(":")
    return f"w{worker}-{number}" if number else str(key)


def _value(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple, set, frozenset)) \
        else str(value)
    return f'"{text}"' if (" " in text or not text) else text


def subscriber_event(key: str | None, user: str | None, event: str, *,
                     level: int = logging.INFO, **details: Any) -> None:
    """One line for one subscriber event (details: plain values; never secrets)."""
    details = {k: v for k, v in details.items() if v is not None}
    sid = sub_id(key)
    text = f"sub={sid} user={user or '-'} event={event}"
    if details:
        text += " " + " ".join(f"{k}={_value(v)}" for k, v in details.items())
    _events.log(level, "%s", text, extra={"sub": sid, "user": user, "event": event,
                                          "details": details})


class TextFormatter(logging.Formatter):
    def __init__(self, proc: str) -> None:
        super().__init__(f"%(asctime)s {proc} %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, proc: str) -> None:
        super().__init__()
        self.proc = proc

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "proc": self.proc, "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "details":
                out[key] = value
        details = getattr(record, "details", None)
        if isinstance(details, dict):
            for key, value in details.items():
                out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str, fmt: str, proc: str) -> None:
    """Root logger: `level`, one stderr handler with the chosen format (again on reload)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    formatter = JsonFormatter(proc) if fmt == "json" else TextFormatter(proc)
    for handler in root.handlers:
        handler.setFormatter(formatter)
