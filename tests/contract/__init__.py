"""Contract-test helpers: local HTTP servers that enforce a pinned OpenAPI (Swagger 2.0) spec."""
