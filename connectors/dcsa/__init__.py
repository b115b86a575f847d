"""DCSA Track & Trace (ocean; 2.2 and 3.0): carrier event JSON to canonical tracking events."""
