"""Errors. A `SampleError` ends one sample with a status; anything else is a bug or a config error."""

from __future__ import annotations

SUCCESS = "success"
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_SUBSAMPLE = "failed_to_subsample"
FILTERED = "filtered"
STATUSES = (SUCCESS, FAILED_TO_DOWNLOAD, FAILED_TO_SUBSAMPLE, FILTERED)


class V2DError(Exception):
    """Base of all errors raised on purpose by v2d_vox."""


class ConfigError(V2DError, ValueError):
    """A bad argument or config key: raised before any work starts."""


class SourceBlocked(V2DError):
    """A host keeps refusing us (HTTP 429/403): the shard stops and stays not-done, so a rerun retries it."""


class SampleError(V2DError):
    """One sample failed; the shard goes on. `status` is one of STATUSES."""

    status = FAILED_TO_SUBSAMPLE

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class DownloadError(SampleError):
    status = FAILED_TO_DOWNLOAD


class SubsampleError(SampleError):
    status = FAILED_TO_SUBSAMPLE


class Filtered(SampleError):
    status = FILTERED
