"""Errors that reach users as one clear line."""


class FacoError(Exception):
    """Base class: the message is shown to the user as it is, on one line."""


class ConfigError(FacoError):
    """A study config is malformed or names something that does not exist."""


class RecordError(FacoError):
    """A data row does not fit its schema (message names file, row and field)."""


class ArtifactError(FacoError):
    """An artifact directory is missing, incomplete, or fails verification."""
