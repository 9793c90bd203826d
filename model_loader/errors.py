"""The loader's failures, each with the one exit code the CLI returns for it."""


class LoaderError(Exception):
    """Base of every failure the CLI reports as one line and an exit code."""

    exit_code = 1


class UsageError(LoaderError):
    """Bad arguments or configuration (a name, a digest, a missing setting)."""

    exit_code = 2


class NotFoundError(LoaderError):
    """The container, version or a file of it is not in Blob (or not on disk)."""

    exit_code = 3


class AuthError(LoaderError):
    """Blob refused our credentials (401/403) or no credential could be had."""

    exit_code = 4


class IntegrityError(LoaderError):
    """A size, sha256 or digest did not match the manifest or the pin."""

    exit_code = 5


class TransientError(LoaderError):
    """Retries of a transient failure (network, 5xx, stalled read) were exhausted."""

    exit_code = 6
