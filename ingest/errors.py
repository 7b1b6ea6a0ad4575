"""Errors raised while reading files; each carries a one-line reason for the user."""

from __future__ import annotations


class ParseError(Exception):
    """A file could not be turned into text. `str(err)` is the one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedFormat(ParseError):
    """No parser handles this file type."""


class EncryptedFile(ParseError):
    """The file is encrypted and no working password was given."""


class EmptyDocument(ParseError):
    """The file parsed but holds no text."""
