"""A local folder source's walk (what is a document, what is skipped and why) and its reads.

- Hidden entries (a name starting with ".") and files the include/exclude globs leave out are
  ignored: neither listed nor skipped.
- A regular file is listed. Any other entry that is not a folder is listed as skipped, with the
  reason: ``dangling symlink (to …)``, ``symlink loop``, ``not a regular file (FIFO)`` (or
  socket, character device, block device). Nothing is opened to find out, and a read opens
  without blocking and refuses what is not a regular file (an entry replaced by a FIFO after
  the listing): a FIFO never blocks a run.
- A symlink whose target is outside the source is skipped, unless ``follow_external``
  (``LLMW_FOLLOW_EXTERNAL_SYMLINKS``).
- A file reached through a symlink (the file's own, or a symlinked folder above it) is ingested
  once: when the walk lists its target under the target's own name (inside the source, not
  hidden, selected by the globs), the link is skipped; otherwise (a hidden or left-out target, a
  followed external one) it is listed under the first name that reaches it, and skipped under
  any other.
- Symlinked folders are followed, each target folder once; a link to a folder that contains it
  (a cycle) is skipped, so the walk always ends.
Within a folder, entries are in name order: files (and skipped links) first, then subfolders.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from components.ingest.sources import DocumentRef, SourceFilter

_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}
FileKey = tuple[int, int]  # (st_dev, st_ino): one file or folder, whatever names reach it


def not_regular(mode: int) -> str:
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'unknown type')})"


def read_regular(path: Path) -> bytes:
    """A regular file's bytes; OSError for anything else, at once (a FIFO is never waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path}: {not_regular(mode)}")
        return file.read()


@dataclass
class _Folder:
    path: Path  # as walked, through links
    prefix: str  # its name relative to the source, with a trailing slash ("" for the root)
    ancestors: frozenset[FileKey]  # itself and every folder above it on the way here
    via_link: bool  # reached through a symlinked folder


@dataclass
class FolderWalk:
    """Every entry of the folder ``root`` (resolved), as DocumentRefs, streamed."""

    root: Path
    filter: SourceFilter
    follow_external: bool = False
    followed: dict[FileKey, str] = field(default_factory=dict)  # folder link targets -> name
    linked: dict[FileKey, str] = field(default_factory=dict)  # files listed through links

    def refs(self) -> Iterator[DocumentRef]:
        stack = [_Folder(self.root, "", frozenset({_key(os.stat(self.root))}), False)]
        while stack:
            folder = stack.pop()
            subfolders: list[_Folder] = []
            try:
                entries = sorted(os.scandir(folder.path), key=lambda e: e.name)
            except OSError as exc:
                name = folder.prefix.rstrip("/")
                yield self._skip(folder.path, name, f"could not list the folder: {exc.strerror}")
                continue
            for entry in entries:
                if not entry.name.startswith("."):
                    yield from self._entry(folder, entry, subfolders)
            stack.extend(reversed(subfolders))

    def _entry(
        self, folder: _Folder, entry: os.DirEntry[str], subfolders: list[_Folder]
    ) -> Iterator[DocumentRef]:
        path, name = Path(entry.path), folder.prefix + entry.name
        if entry.is_symlink():
            yield from self._symlink(folder, path, name, subfolders)
            return
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return  # gone since the folder was read: not there to list
        if stat.S_ISDIR(info.st_mode):
            ancestors = folder.ancestors | {_key(info)}
            subfolders.append(_Folder(path, name + "/", ancestors, folder.via_link))
        elif not self.filter.selects(name):
            return
        elif not stat.S_ISREG(info.st_mode):
            yield self._skip(path, name, not_regular(info.st_mode))
        elif folder.via_link:
            yield self._linked_file(path, name, info)
        else:
            yield self.filter.ref(path.as_uri(), name, info.st_size)

    def _symlink(
        self, folder: _Folder, path: Path, name: str, subfolders: list[_Folder]
    ) -> Iterator[DocumentRef]:
        try:
            info = path.stat()
        except OSError as exc:
            if self.filter.selects(name):
                yield self._skip(path, name, self._broken(path, exc))
            return
        real = Path(os.path.realpath(path))
        if not stat.S_ISDIR(info.st_mode):
            if not self.filter.selects(name):
                return
            if not stat.S_ISREG(info.st_mode):
                yield self._skip(path, name, not_regular(info.st_mode))
            elif (reason := self._outside(real)) is not None:
                yield self._skip(path, name, reason)
            else:
                yield self._linked_file(path, name, info)
            return
        key = _key(info)
        if (reason := self._outside(real)) is not None:
            yield self._skip(path, name, reason)
        elif key in folder.ancestors:
            yield self._skip(
                path,
                name,
                f"symlink cycle: {name} points to {self._shown(real)}, a folder that contains it",
            )
        elif key in self.followed:
            shown = self._shown(real)
            reason = f"symlink to folder {shown}, already followed as {self.followed[key]}"
            yield self._skip(path, name, reason)
        else:
            self.followed[key] = name
            subfolders.append(_Folder(path, name + "/", folder.ancestors | {key}, True))

    def _linked_file(self, path: Path, name: str, info: os.stat_result) -> DocumentRef:
        """A regular file reached through a symlink: listed once, under the name that counts."""
        rel = self._relative(Path(os.path.realpath(path)))
        if rel is not None and self._listed_anyway(rel):
            return self._skip(path, name, f"the same file as {rel}, listed under its own name")
        if (first := self.linked.get(_key(info))) is not None:
            return self._skip(path, name, f"the same file as {first}, listed under that name")
        self.linked[_key(info)] = name
        return self.filter.ref(path.as_uri(), name, info.st_size)

    def _listed_anyway(self, rel: str) -> bool:
        """Whether the walk lists ``rel`` (a real path inside the source) under its own name."""
        parts = PurePosixPath(rel).parts
        return not any(p.startswith(".") for p in parts) and self.filter.selects(rel)

    def _outside(self, real: Path) -> str | None:
        if self.follow_external or self._relative(real) is not None:
            return None
        return (
            f"symlink to {real}, outside the source (LLMW_FOLLOW_EXTERNAL_SYMLINKS=true follows it)"
        )

    def _relative(self, real: Path) -> str | None:
        """``real`` relative to the source's root, or None when outside it."""
        try:
            return real.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def _shown(self, real: Path) -> str:
        rel = self._relative(real)
        return str(real) if rel is None else ". (the source)" if rel == "." else rel

    def _broken(self, path: Path, exc: OSError) -> str:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno == errno.ENOENT:
            return f"dangling symlink (to {os.path.realpath(path)})"
        return f"could not follow symlink: {exc.strerror}"

    def _skip(self, path: Path, name: str, reason: str) -> DocumentRef:
        return DocumentRef(uri=path.as_uri(), name=name, size=0, skip_reason=reason)


def _key(info: os.stat_result) -> FileKey:
    return (info.st_dev, info.st_ino)
