"""Errors that are the user's to fix: the CLI prints their message alone, with no traceback."""


class UserError(Exception):
    """A problem in the user's input (recipe, override, data file) with a message that names where it is."""
