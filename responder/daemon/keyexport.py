"""Opt-in key export (``ike.key_export_file``): every worker appends one line of
Wireshark's IKEv1 decryption table (``icookie,enckey``, responder/ikev1/crypto/export.py)
per established phase 1 SA. A debugging aid only: the file holds phase 1 keys in clear,
so it is created 0600 and the config check warns about it.

Lines are short single ``write`` calls on an O_APPEND descriptor, so the workers'
lines never interleave.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from responder.ikev1.events import Event, KeyExport

log = logging.getLogger(__name__)

__all__ = ["KeyExportFile", "with_key_export"]


class KeyExportFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.written = 0

    def append(self, event: KeyExport) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (event.line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("[%s] key export to %s failed: %s", event.sa_id, self.path, exc)
            return
        self.written += 1
        log.debug("[%s] phase 1 key exported to %s", event.sa_id, self.path)


def with_key_export(path: Path | str | None,
                    handler: Callable[[Event], None]) -> Callable[[Event], None]:
    """`handler` itself when no export file is configured; else a handler that writes
    KeyExport events to the file and passes every other event on."""
    if path is None:
        return handler
    export = KeyExportFile(path)
    log.warning("phase 1 keys are exported in clear to %s (ike.key_export_file)", path)

    def handle(event: Event) -> None:
        if isinstance(event, KeyExport):
            export.append(event)
        else:
            handler(event)

    return handle
