"""Errors that reach users as one clear line, and the exit code each one gets.

Exit codes (the CLI contract, docs/failure-model.md):
0 success · 1 internal error · 2 usage error · 3 config error · 4 bad input or artifact (also a full,
read-only or forbidden disk) · 5 verification failed (tampering, missing files, broken lineage) ·
6 output busy (another run holds the lock) · 130 interrupted (Ctrl-C) · 143 terminated (SIGTERM,
128 + 15, as Kubernetes stops a pod).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INPUT = 4
EXIT_VERIFY = 5
EXIT_BUSY = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class FacoError(Exception):
    """Base class: the message is shown to the user as it is, on one line."""

    exit_code = EXIT_INPUT


class UsageError(FacoError):
    """A command line that cannot be run as given (e.g. a `--set` path the config schema lacks)."""

    exit_code = EXIT_USAGE


class ConfigError(FacoError):
    """A study config is malformed or names something that does not exist."""

    exit_code = EXIT_CONFIG


class RecordError(FacoError):
    """A data row does not fit its schema (message names file, row and field)."""


class ArtifactError(FacoError):
    """An artifact directory is missing, incomplete, or not of the expected kind."""


class VerificationError(ArtifactError):
    """An artifact or its lineage fails verification (hash mismatch, missing file or parent)."""

    exit_code = EXIT_VERIFY


class BusyError(FacoError):
    """Another live faco process holds the lock on this output."""

    exit_code = EXIT_BUSY


class Terminated(BaseException):
    """SIGTERM arrived (`faco.signals`): unwinds like Ctrl-C, cleaning up, and exits EXIT_TERMINATED.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` swallows it.
    """

    exit_code = EXIT_TERMINATED
