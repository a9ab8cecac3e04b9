"""Errors that mean "the input is unusable": stages turn them into one line naming the file and problem."""


class DataError(ValueError):
    """A source cannot be used at all; the message says which file and why."""
