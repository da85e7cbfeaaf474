"""Blue/green rollout of a new embedding model behind a Milvus alias.

``rollout_embeddings`` builds the alias's next generation with the new model through the
ingestion job, gates it on a labelled query set against the live one
(``components.ingest.retrieval_eval``), then promotes it with one ``alter_alias`` or rolls back.
See ``components.ingest.generations`` for the collections' names and what they record.
"""
