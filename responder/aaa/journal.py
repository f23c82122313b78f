"""Files that keep accounting durable: the journal, the dead letters, the boot counter.

:class:`AccountingJournal` is an append-only file of JSON lines::

    {"op": "add", "id": 7, "entry": {...}}      a record to deliver (written before sending)
    {"op": "done", "id": 7}                     its Accounting-Response arrived

At start the adds without a done are the undelivered records, in id order. A last line
cut short by a crash is ignored. When nothing is pending the file is truncated, and after
``compact_after`` done marks it is rewritten (temporary file, fsync, rename) with only
the pending adds, so it stays about as large as the queue.

Every line is written to the kernel at once (``write`` + ``flush``): it survives a crash
of the daemon (SIGKILL included). With ``fsync=True`` (the default) :meth:`sync` also
puts it on disk, for a host crash; the accountant calls it once per burst of records
(group commit: one fsync, ~0.2 ms here, covers every line written before it) and before
every send, so a record is on disk before it leaves. ``fsync=False``: never synced.

:class:`DeadLetters` is an append-only JSON-lines file of the records no server
acknowledged (each line: when, why, attempts, the record's attributes).
:func:`next_boot_id` counts the daemon's starts in a small file: the count is the
per-boot part of every Acct-Session-Id.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

Entry = dict[str, Any]

_ADD = "add"
_DONE = "done"
BOOT_COUNT_FILE = "boot-count"


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _parse_lines(text: str, path: Path) -> Iterator[dict]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is cut short or damaged: ignored", path, number)
            continue
        if isinstance(item, dict) and item.get("op") in (_ADD, _DONE):
            yield item


class AccountingJournal:
    """The append-only file of accounting records not yet acknowledged."""

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True,
                 compact_after: int = 1000) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.compact_after = compact_after
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._pending: dict[int, Entry] = self._read()
        self._next_id = max(self._pending, default=0) + 1
        self._done_since_compaction = 0
        self._unsynced = False        # any line written since the last sync
        self._unsynced_add = False    # an add among them: a record not yet on disk
        self._handle = open(self.path, "a")
        os.chmod(self.path, 0o600)
        self.compact()

    def _read(self) -> dict[int, Entry]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        pending: dict[int, Entry] = {}
        for item in _parse_lines(text, self.path):
            if item["op"] == _ADD:
                pending[int(item["id"])] = item["entry"]
            else:
                pending.pop(int(item["id"]), None)
        return dict(sorted(pending.items()))

    def pending(self) -> list[tuple[int, Entry]]:
        """The undelivered entries, oldest first."""
        return list(self._pending.items())

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, entry: Entry) -> int:
        """Write one entry (to the kernel; :meth:`sync` for the disk) and return its id."""
        entry_id, self._next_id = self._next_id, self._next_id + 1
        self._write({"op": _ADD, "id": entry_id, "entry": entry})
        self._unsynced_add = self.fsync
        self._pending[entry_id] = entry
        return entry_id

    def done(self, entry_id: int) -> None:
        """The entry was delivered (or dead-lettered): it leaves the journal."""
        if self._pending.pop(entry_id, None) is None:
            return
        self._done_since_compaction += 1
        if not self._pending or self._done_since_compaction >= self.compact_after:
            self.compact()
        else:
            self._write({"op": _DONE, "id": entry_id})

    def compact(self) -> None:
        """Rewrite the file with the pending entries only (empty when none are)."""
        self._handle.close()
        lines = "".join(json.dumps({"op": _ADD, "id": i, "entry": e}, separators=(",", ":"))
                        + "\n" for i, e in self._pending.items())
        _replace_atomically(self.path, lines)
        os.chmod(self.path, 0o600)
        self._handle = open(self.path, "a")
        self._done_since_compaction = 0
        self._unsynced = self._unsynced_add = False

    @property
    def unsynced(self) -> bool:
        """Lines written since the last :meth:`sync` (always False without ``fsync``)."""
        return self._unsynced

    @property
    def unsynced_add(self) -> bool:
        """A record added since the last :meth:`sync` (done marks alone do not count: a lost
        one only means the record is sent once more after a host crash)."""
        return self._unsynced_add

    def sync(self) -> None:
        """Put every line written so far on disk (one fsync; nothing to do: no call)."""
        if self._unsynced:
            os.fsync(self._handle.fileno())
            self._unsynced = self._unsynced_add = False

    def _write(self, item: dict) -> None:
        self._handle.write(json.dumps(item, separators=(",", ":")) + "\n")
        self._handle.flush()
        self._unsynced = self.fsync

    def close(self) -> None:
        self.sync()
        self._handle.close()


class DeadLetters:
    """Records no server acknowledged, one JSON line each, for the operator."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def write(self, item: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (json.dumps(item, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def next_boot_id(state_dir: str | os.PathLike) -> str:
    """This start's number (8 hex digits), one more than the last start's, kept in
    ``<state_dir>/boot-count``. A directory without the file starts from a random number:
    a fresh state directory (a new install, a tmpfs after a host reboot, another daemon on
    the same RADIUS server) must not reuse the ids of another one. If the file cannot be
    written, a random number is used (and a warning logged)."""
    path = Path(state_dir) / BOOT_COUNT_FILE
    try:
        count = (int(path.read_text().strip()) + 1) & 0xFFFFFFFF
    except (FileNotFoundError, ValueError):
        count = _random_boot()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _replace_atomically(path, f"{count}\n")
    except OSError as exc:
        count = _random_boot()
        log.warning("boot counter %s not writable (%s): random boot id %08X", path,
                    exc.strerror, count)
    return f"{count:08X}"


def _random_boot() -> int:
    return int.from_bytes(os.urandom(4), "big")
