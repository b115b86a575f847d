"""The faust worker: the wiring (app.py) that runs the pure core of streams between Kafka and its tables, and the
two faust/aiokafka adjustments it needs (consumer_guard.py, fetching.py)."""
