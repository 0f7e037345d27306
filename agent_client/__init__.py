"""Everything a person uses in a browser, and the HTTP API behind it."""
