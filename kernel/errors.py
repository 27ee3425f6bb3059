"""The one base class of every refusal a caller can be told about.

A context raises a ``DomainError`` (or a subclass of its own) when a
request cannot be carried out: a rule refuses it, something it names does
not exist, the caller may not do it. The error carries what every adapter
needs to answer it, so none keeps a table of its own:

* ``code``: the stable error code of the API (``message_not_found``...);
* ``detail``: a sentence for a person;
* ``status``: the HTTP status the API answers it with (websocket error
  frames carry the code and detail).

The API turns it into its error shape in one place (api/errors.py).
Anything else that escapes a request is a bug and answers 500.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refused request; subclasses fix ``code`` and ``status`` as class attributes."""

    code: str = "invalid_request"
    status: int = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status} {self.code}: {self.detail})"
