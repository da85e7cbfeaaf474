"""Ray Serve applications the cluster's RayService runs, and ``llmw serve`` runs locally.

Each module is a Ray Serve application builder named by the RayService's ``import_path``
(``serving.<app>:app``), called with the serve config's ``args`` (``model``,
``served_model_name``, ``model_version``, ``model_digest``). Each serves the OpenAI paths under
its route prefix: ``/embeddings/v1/embeddings``, ``/llm/v1/completions``,
``/llm/v1/chat/completions``, ``/reranker/v1/rerank``, and ``/<app>/v1/models``. The whisper and
tts builders refuse: those applications are not built here. Imports ``components`` only.
"""
