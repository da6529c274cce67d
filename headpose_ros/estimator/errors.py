"""Errors the estimator raises; each message names what is wrong and, where it helps, what to do."""


class HeadPoseError(Exception):
    """Base class of the estimator's own errors."""


class ConfigError(HeadPoseError, ValueError):
    """A configuration value is unknown or out of range."""


class BackendUnavailableError(HeadPoseError):
    """A backend's dependency (a Python package, a model file, a GPU) is missing."""


class ModelFileError(HeadPoseError):
    """A weights file is missing, corrupt or belongs to another model; the message names the file."""


class ImageError(HeadPoseError, ValueError):
    """An input image cannot be used (empty, wrong shape or type)."""
