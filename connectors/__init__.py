"""Every edge to the outside: Kafka admin and publishing, the Postgres projection, carrier formats."""
