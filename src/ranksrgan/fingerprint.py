"""Fingerprints of the files and folders a training stage reads, for its identity key.

The rule (also in the README):

* a **folder** (images): SHA-256 over the sorted ``(relative path, size, modification time in
  ns)`` of every file below it. Cheap, without reading pixels: an image rewritten in place
  changes its mtime and so the fingerprint; a folder copied elsewhere with ``cp -p`` keeps it.
* a **file** (label CSV, checkpoint): SHA-256 of its content. Hashes are cached per process by
  ``(path, size, mtime)``, so planning the same run twice reads each file once.
* a path that does not exist has no fingerprint; the caller decides whether that is an error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["file_digest", "folder_digest", "path_digest"]

_FILE_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """``"sha256:<hex>"`` of the file's content."""
    path = Path(path)
    st = path.stat()
    cache_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _FILE_CACHE.get(cache_key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _FILE_CACHE[cache_key] = f"sha256:{h.hexdigest()}"
    return digest


def folder_digest(path: str | os.PathLike) -> str:
    """``"files:<n>:<hex>"``: names, sizes and modification times of every file below ``path``."""
    root = Path(path)
    h = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            st = full.stat()
            h.update(f"{full.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
    return f"files:{count}:{h.hexdigest()}"


def path_digest(path: str | os.PathLike) -> str | None:
    """:func:`folder_digest` for a folder, :func:`file_digest` for a file, None if missing."""
    path = Path(path)
    if path.is_dir():
        return folder_digest(path)
    if path.is_file():
        return file_digest(path)
    return None
