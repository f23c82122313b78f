"""The vendor-ID regression suite: one table of cases (cases.yaml), run in memory
against the sans-I/O responder (memory.py) and in the lab against the running
daemon and the reference strongSwan gateway (lab.py). docs/vendor-ids.md explains
the table."""
