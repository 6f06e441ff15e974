"""Exceptions whose message tells the user what to do."""


class UserError(Exception):
    """Bad input: a wrong path, a malformed file, an impossible spec.

    The CLI prints the message and exits with status 2; the app shows it inline. The
    message names the fix, so no traceback is needed.
    """


class DiskFull(UserError):
    """A write found the store's disk full; it was rolled back, the store is intact."""


class Cancelled(Exception):
    """The sweep was asked to stop; finished points are kept."""


class NonFiniteError(Exception):
    """NaN or Inf in the weights or logits at a grid point: the point is failed."""


class ClaimLost(Exception):
    """Another worker holds this job now: this one stops without writing more."""
