"""The one error of the lake layer."""

from __future__ import annotations

from chipsweep.schemas.errors import ChipsweepError


class LakeError(ChipsweepError):
    """A lake location, path or partition value the lake cannot use: names the field, the value and what
    is allowed."""
