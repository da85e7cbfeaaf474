"""The NATS JetStream bridge: AI_PIPELINE requests become runs on an engine; status events go back."""
