"""`llmw --help`, `-h` and `--version`: what a newcomer reads first."""

from __future__ import annotations

from importlib.metadata import version

from tests.llmw.test_ingest_cli import llmw


def flat(text: str) -> str:
    """Help text without the boxes and line wrapping rich adds."""
    return " ".join(text.replace("│", " ").split())


def test_version() -> None:
    result = llmw("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llmw {version('llm-workflows')}"


def test_h_is_help_and_defaults_are_shown() -> None:
    short = llmw("ingest", "-h")
    assert short.returncode == 0, short.stderr
    assert flat(short.stdout) == flat(llmw("ingest", "--help").stdout)
    text = flat(short.stdout)
    assert "[default: documents]" in text
    assert "[default: LLMW_MILVUS_URI]" in text


def test_docstrings_read_as_paragraphs() -> None:
    # A docstring's own line breaks are not the terminal's: a sentence is never cut in two.
    text = flat(llmw("ingest", "--help").stdout)
    assert "4 prune refused; 2 bad input or configuration." in text
    assert "\n input or configuration" not in llmw("ingest", "--help").stdout
