"""Removes what a lab's record lists: sandbox holders, processes, namespaces, links.

After a crash (or before a new lab with the same prefix) `clean_state` reads the
lab's record (lab.state) and the sandbox's (lab.holders) and removes exactly those
leftovers, by PID and recorded name, never by pattern.
"""
from __future__ import annotations

from lab.holders import stop_sandbox
from lab.state import (LabRunningError, LabState, delete_netns_name, delete_root_link,
                       processes_in_namespaces, root_links, terminate_process,
                       terminate_processes)


def clean_state(state: LabState, *, force: bool = False) -> list[str]:
    """Remove every leftover `state` records; return a line per thing removed.

    Refuses (raises LabRunningError) while the owner process is alive, unless force:
    a running lab is stopped with `down`, not cleaned away under its owner.
    """
    if state.owner_alive() and not force:
        raise LabRunningError(state)
    removed: list[str] = []
    if force and state.owner_alive() and terminate_process(state.owner, timeout=10.0):
        removed.append(f"owner process {state.owner.pid} ({state.owner.what})")
    # Processes first: a live daemon keeps its namespace (and the veths in it) alive.
    removed += [f"sandbox: {line}" for line in stop_sandbox(state.prefix)]
    for record in terminate_processes(list(state.daemons.values())):
        removed.append(f"process {record.pid} ({record.what})")
    for record in terminate_processes(list(state.hosts.values()), timeout=1.0):
        removed.append(f"host shell {record.pid} ({record.what})")
    for record in terminate_processes(processes_in_namespaces(state)):
        removed.append(f"process {record.pid} in a lab namespace ({record.what[:80]})")
    for name, inode in state.netns_names.items():
        what = delete_netns_name(name, inode)
        if what:
            removed.append(what)
    present = root_links()
    for name in [*state.root_links, *state.interfaces]:
        if name in present:
            what = delete_root_link(name)
            if what:
                removed.append(what)
    state.remove()
    return removed
