"""Sharing with parties over Kafka: the stage that sends each party its view (`hub.share.<audience>`) and audits
every share (`share_audit`, `hub.audit`), and the usage reports read from that audit."""
