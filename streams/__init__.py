"""What happens to the events: the pure merge (merge.py, codec.py) and the faust wiring that runs it (app.py)."""
