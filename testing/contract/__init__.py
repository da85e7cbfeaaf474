"""Contract servers: local HTTP servers that check each request against a pinned OpenAPI spec."""
