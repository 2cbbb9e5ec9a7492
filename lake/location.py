"""Where the lake is: $CHIPSWEEP_LAKE (a path or a URI such as s3://bucket/prefix), else $CHIPSWEEP_HOME/lake,
and the `pyarrow.fs` filesystem that reaches it, so a local folder and an object store are the same code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import pyarrow.fs as pafs

ENV_HOME = "CHIPSWEEP_HOME"
ENV_LAKE = "CHIPSWEEP_LAKE"
DEFAULT_HOME = ".chipsweep"
_URI_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def chipsweep_home(env: Mapping[str, str] | None = None) -> str:
    """$CHIPSWEEP_HOME, default `.chipsweep` in the working directory (absolute)."""
    env = os.environ if env is None else env
    return os.path.abspath(os.path.expanduser(env.get(ENV_HOME) or DEFAULT_HOME))


def lake_root(env: Mapping[str, str] | None = None) -> str:
    """The lake of `env` (default: the process environment): $CHIPSWEEP_LAKE, else $CHIPSWEEP_HOME/lake."""
    env = os.environ if env is None else env
    value = env.get(ENV_LAKE)
    if value:
        return normalise_root(value)
    return os.path.join(chipsweep_home(env), "lake")


def is_uri(root: str) -> bool:
    """A URI pyarrow.fs resolves (s3://, gs://, ...); file:// counts as a local path."""
    return bool(_URI_RE.match(root)) and not root.startswith("file://")


def normalise_root(root: str | os.PathLike[str]) -> str:
    """A URI without its trailing slash, or an absolute local path (file:// stripped)."""
    text = os.fspath(root)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_uri(text):
        return text.rstrip("/")
    return os.path.abspath(os.path.expanduser(text))


def filesystem(root: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a lake root and the root's path inside it (no trailing slash)."""
    text = normalise_root(root)
    if is_uri(text):
        fs, path = pafs.FileSystem.from_uri(text)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), text
