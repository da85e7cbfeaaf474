"""Batch inference engines: an OpenAI-compatible server, local transformers, and vLLM.

Each engine takes requests (OpenAI batch rows) and emits one result per row, as results arrive,
in any order; the caller matches them by ``custom_id``. A row that fails gets an error result;
it never stops the others.
"""
