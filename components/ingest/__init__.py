"""Ingestion into Milvus for RAG: sources, partitioning, embedding, upserts, search, the steps."""
