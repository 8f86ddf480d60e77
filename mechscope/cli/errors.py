"""CLIError: a bad command-line argument, reported in one line with exit code 2."""

from __future__ import annotations

from mechscope.errors import MechscopeError

__all__ = ["CLIError"]


class CLIError(MechscopeError, ValueError):
    """A flag or argument is wrong; the message names the flag and the fix."""
