"""Webhooks: parties' subscriptions to their own share messages, delivered through a Postgres outbox, signed and in order."""
