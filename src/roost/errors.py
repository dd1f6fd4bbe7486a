"""Whose mistake an error is, carried by its type rather than read out of its message.

Everything a user can get wrong - hyperparameters, channels, lists, records,
weights, locations, request bodies - raises a :class:`UserError` subclass
(SageMaker's ``ClientError``): the job ends with ``ClientError: <message>``,
an HTTP client gets a 4xx with the message. Any other exception is Roost's own
(``AlgorithmError`` / ``InternalFailure``). ``status`` is the HTTP status an
answer should carry; subclasses refine it where HTTP has a better word.

``UserError`` derives from ``ValueError`` so that code and callers written
against the built-in kind keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Input that cannot be used as given; the message says what is wrong and what to do."""

    status = 400


class PayloadTooLarge(UserError):
    status = 413


class UnsupportedMediaType(UserError):
    status = 415
