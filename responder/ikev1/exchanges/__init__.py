"""One module per IKEv1 exchange, each with its state table (see common.py)."""
