"""The NATS JetStream bridge: AI_PIPELINE requests become runs; status events go back."""
