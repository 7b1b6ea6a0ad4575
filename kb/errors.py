"""One family of errors whose messages are meant for the user; the CLI prints them as one line."""

from __future__ import annotations


class KBError(Exception):
    """Base for every error kb reports to the user without a traceback."""

    exit_code = 1


class ConfigError(KBError):
    """A setting, config file or environment variable is invalid."""


class ModelNotFound(KBError):
    """A configured embedding model or GGUF file does not exist or cannot be loaded."""


class ManifestMismatch(KBError):
    """The knowledge base was built with other settings than the ones in use."""


class KBNotFound(KBError):
    """No knowledge base exists at the selected location."""


class KBLocked(KBError):
    """Another process is writing to this knowledge base."""


class InputError(KBError):
    """A path or argument given by the user cannot be used."""


class KBDamaged(KBError):
    """The knowledge-base folder is damaged in a way `kb repair` or `kb rebuild` must fix first."""


class KBEmpty(KBError):
    """The knowledge base holds no documents, so there is nothing to search or answer from."""
