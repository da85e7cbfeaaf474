"""Argo Events for llm-workflows: the EventSources (MinIO bucket notifications, a calendar, a CI
webhook) and the Sensors that start the registered pipelines from them, built in Python from
the job registry, rendered to YAML and validated strictly against the pinned Argo Events schema.

- ``models/``: the Argo Events and Kubernetes objects, in the shape their controllers read;
- ``config``: the settings these documents are rendered from, checked;
- ``catalog``: which sensors exist, what each listens to and how event fields map to parameters;
- ``filters``, ``event_sources``, ``mapping``, ``triggers``, ``build``, ``rbac``: the documents;
- ``render``: every document, validated, as YAML files (what ``llmw compile`` writes);
- ``simulate/``: a sensor evaluated offline on a sample event, as Argo Events would;
- ``listing``: what ``llmw events list`` shows.
"""
