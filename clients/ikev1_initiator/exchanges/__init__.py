"""The initiator's exchanges, one module each, as functions over a `SessionCore`:
`main_mode`, `aggressive_mode` (both on `phase1`), `transaction` (Xauth and
Mode-Config), `quick_mode` and `informational` (notifies, DPD, Delete)."""
