"""Benchmarks for mmhub: the Kafka pipeline against a raw passthrough (bench.pipeline) and the pure merge path
under a profiler (bench.profile_merge). Both use the synthetic workload of bench.workload."""
