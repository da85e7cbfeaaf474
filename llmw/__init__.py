"""The ``llmw`` command."""
