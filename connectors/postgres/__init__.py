"""The Postgres projection of `hub.shipment.status`: migrations, the sink that writes it, and readers of it."""
