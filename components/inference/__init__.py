"""Batch inference: input rows, engines (vLLM, OpenAI-compatible, transformers), the job's steps."""
