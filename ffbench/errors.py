"""Errors the command line turns into one line and an exit code."""


class BadInput(ValueError):
    """User input that cannot be run; the CLI prints it as one line and exits 2."""
