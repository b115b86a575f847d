"""EN 16931 e-invoices in UBL 2.1 syntax: read (parse) into canonical carrier_invoice events, and written (write)."""
