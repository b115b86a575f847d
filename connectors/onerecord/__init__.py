"""IATA ONE Record (air, mode-neutral): LogisticsEvent JSON-LD to canonical tracking events."""
