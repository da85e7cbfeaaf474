"""A folder source's odd entries: each is listed as skipped with its reason, or ingested once.

Dangling symlinks, symlink loops, FIFOs and sockets are skipped, never opened; a symlink out of
the source is skipped unless LLMW_FOLLOW_EXTERNAL_SYMLINKS; a symlink to a file the walk lists
anyway is skipped (the file is ingested under its own name); symlinked folders are followed, and
a cycle ends.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.ingest.sources import DocumentSource, LocalSource, SourceFilter, open_source
from components.settings import Settings


def listing(source: DocumentSource) -> dict[str, str | None]:
    """name -> skip reason (None: to be ingested), the whole listing, which must end soon."""
    return within(5, lambda: {ref.name: ref.skip_reason for ref in source.list()})


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """call(), which must return (or raise) within ``seconds``; it runs in a daemon thread so a
    blocked call fails the test instead of hanging the session."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s (blocked?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def write(path: Path, text: str = "# Doc\n\nSome text about the cluster.\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def unix_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Binds AF_UNIX sockets at paths given relative to their folder (tmp_path may be longer
    than the ~107 bytes an AF_UNIX address holds)."""
    sockets: list[socket.socket] = []

    def bind(path: Path) -> None:
        monkeypatch.chdir(path.parent)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path.name)
        sockets.append(sock)

    yield bind
    for sock in sockets:
        sock.close()


def local(folder: Path, follow_external: bool = False, **filters: Any) -> LocalSource:
    return LocalSource(folder, SourceFilter(**filters), follow_external_symlinks=follow_external)


def test_dangling_links_loops_fifos_and_sockets_are_skipped_with_the_reason(
    tmp_path: Path, unix_socket: Callable[[Path], None]
) -> None:
    docs = tmp_path / "docs"
    write(docs / "ok.md")
    (docs / "dangling.md").symlink_to(docs / "gone.md")
    (docs / "loop-a.md").symlink_to(docs / "loop-b.md")
    (docs / "loop-b.md").symlink_to(docs / "loop-a.md")
    os.mkfifo(docs / "pipe.md")
    os.mkfifo(docs / "pipe-without-extension")
    (docs / "to-pipe.md").symlink_to(docs / "pipe.md")
    unix_socket(docs / "sock.md")
    os.mkfifo(docs / ".hidden-pipe")  # hidden: ignored as before
    os.mkfifo(docs / "excluded.fifo")  # left out by the globs: ignored as before

    found = listing(local(docs, exclude=["*.fifo"]))

    assert found.keys() == {
        "ok.md",
        "dangling.md",
        "loop-a.md",
        "loop-b.md",
        "pipe.md",
        "pipe-without-extension",
        "to-pipe.md",
        "sock.md",
    }
    assert found["ok.md"] is None
    assert found["dangling.md"] == f"dangling symlink (to {docs / 'gone.md'})"
    assert found["loop-a.md"] == found["loop-b.md"] == "symlink loop"
    assert found["pipe.md"] == found["pipe-without-extension"] == "not a regular file (FIFO)"
    assert found["to-pipe.md"] == "not a regular file (FIFO)"
    assert found["sock.md"] == "not a regular file (socket)"


def test_reading_a_fifo_never_blocks(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    path = write(docs / "doc.md")
    source = local(docs)
    (ref,) = source.list()
    path.unlink()
    os.mkfifo(path)  # replaced between listing and reading
    try:
        with pytest.raises(OSError, match=r"not a regular file \(FIFO\)"):
            within(5, lambda: source.read(ref))
    finally:
        # Unblock a reader left waiting (today's code): a writer opening, then closing, ends it.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(path) else None
        if fd is not None:
            os.close(fd)


def _has_reader(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


def test_a_symlink_out_of_the_source_is_skipped_unless_allowed(tmp_path: Path) -> None:
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    write(docs / "ok.md")
    secret = write(outside / "secret.md", "# Secret\n\nNot part of the docs.\n")
    write(outside / "folder" / "inner.md")
    (docs / "link.md").symlink_to(secret)
    (docs / "linked-folder").symlink_to(outside / "folder")

    found = listing(local(docs))
    assert found["ok.md"] is None
    assert found["link.md"] == (
        f"symlink to {secret}, outside the source (LLMW_FOLLOW_EXTERNAL_SYMLINKS=true follows it)"
    )
    assert found["linked-folder"] == (
        f"symlink to {outside / 'folder'}, outside the source "
        "(LLMW_FOLLOW_EXTERNAL_SYMLINKS=true follows it)"
    )
    assert len(found) == 3

    settings = Settings(follow_external_symlinks=True)
    source = open_source(str(docs), settings)
    followed = listing(source)
    assert followed == {"ok.md": None, "link.md": None, "linked-folder/inner.md": None}
    ref = next(r for r in source.list() if r.name == "link.md")
    assert ref.uri == (docs / "link.md").as_uri()
    assert source.read(ref) == secret.read_bytes()


def test_a_symlink_to_a_listed_file_is_skipped_the_file_ingested_once(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "guide" / "real.md")
    (docs / "a-alias.md").symlink_to(docs / "guide" / "real.md")  # listed before its target
    (docs / "guide" / "relative.md").symlink_to("real.md")
    draft = write(docs / ".drafts" / "v2.md")  # hidden, so listed only through the link
    (docs / "current.md").symlink_to(draft)
    (docs / "current2.md").symlink_to(draft)
    write(docs / "skipme" / "excluded.md")  # left out by the globs under its own name
    (docs / "included.md").symlink_to(docs / "skipme" / "excluded.md")

    found = listing(local(docs, exclude=["skipme/*"]))

    assert found == {
        "a-alias.md": "the same file as guide/real.md, listed under its own name",
        "current2.md": "the same file as current.md, listed under that name",
        "current.md": None,
        "included.md": None,
        "guide/real.md": None,
        "guide/relative.md": "the same file as guide/real.md, listed under its own name",
    }


def test_symlinked_folders_are_followed_and_a_cycle_ends(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "top.md")
    write(docs / "sub" / "a.md")
    (docs / "sub" / "up").symlink_to("..")  # a cycle through the source's root
    (docs / "sub" / "self").symlink_to(".")  # a cycle on itself
    write(docs / ".releases" / "v3" / "notes.md")
    (docs / "latest").symlink_to(docs / ".releases" / "v3")
    (docs / "newest").symlink_to(docs / ".releases" / "v3")  # the same folder, again
    (docs / "sub-again").symlink_to("sub")  # a listed folder: its files have their own names

    found = listing(local(docs))

    assert found == {
        "top.md": None,
        "latest/notes.md": None,
        "newest": "symlink to folder .releases/v3, already followed as latest",
        "sub/a.md": None,
        "sub/self": "symlink cycle: sub/self points to sub, a folder that contains it",
        "sub/up": "symlink cycle: sub/up points to . (the source), a folder that contains it",
        "sub-again/a.md": "the same file as sub/a.md, listed under its own name",
        "sub-again/self": "symlink cycle: sub-again/self points to sub, a folder that contains it",
        "sub-again/up": (
            "symlink cycle: sub-again/up points to . (the source), a folder that contains it"
        ),
    }


def test_ingestion_counts_odd_entries_as_skipped(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    docs = tmp_path / "docs"
    write(docs / "ok.md")
    (docs / "alias.md").symlink_to("ok.md")
    (docs / "dangling.md").symlink_to("gone.md")
    os.mkfifo(docs / "pipe.md")
    (docs / "outside.md").symlink_to(write(tmp_path / "outside.md"))

    report = within(
        300,
        lambda: ingest(IngestParams(source=str(docs)), make_settings(), embedder=minilm),
    )

    assert (report.documents.seen, report.documents.new, report.documents.skipped) == (5, 1, 4)
    reasons = {s.source_uri.rsplit("/", 1)[-1]: s.error for s in report.skipped}
    assert reasons.keys() == {"alias.md", "dangling.md", "pipe.md", "outside.md"}
    assert reasons["pipe.md"] == "not a regular file (FIFO)"
    assert reasons["dangling.md"].startswith("dangling symlink")
    assert "outside the source" in reasons["outside.md"]
    assert reasons["alias.md"] == "the same file as ok.md, listed under its own name"
