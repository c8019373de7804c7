"""The one exception type users see: its message is a complete one-line explanation."""


class RagError(Exception):
    """A problem the user can fix (bad input, missing model, corrupt index).

    The CLI and UI print `str(error)` on one line; nothing else about it is shown.
    """
