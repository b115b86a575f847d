"""What happens to the events, as pure functions: the merge (merge.py, codec.py), references, routing, sharing.
No I/O here: the faust wiring that runs them is the worker package (tests/unit/test_layers.py holds the rule)."""
