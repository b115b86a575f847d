"""The hub's stage runtime: one batched, checkpointed loop over aiokafka that every high-volume stage runs on.

`runtime.api` is its vocabulary (records in, messages out, state stores, a stage's declaration): plain data, so a
stage's handler is unit-tested without Kafka. The loop itself lives beside it and is the only code here that
talks to the broker or to RocksDB.
"""
