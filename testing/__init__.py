"""What tests and benchmarks share: service fixtures (nats-server, OpenAI and contract servers),
the tiny LM, document writers, the recording engine and the bridge harness. ``tests/`` and
``bench/`` import this package, never each other."""
