"""Closed sets of names that users type (kinds, data classes, risk tiers, roles).

:class:`Choice` is a ``StrEnum`` whose ``parse`` turns a bad value into one
:class:`~breedlab.errors.InvalidRequest` naming every allowed value, so each closed set is
declared once and refused the same way everywhere.
"""

from __future__ import annotations

import enum
import re
from typing import Self

from breedlab.errors import InvalidRequest

__all__ = ["Choice"]


class Choice(enum.StrEnum):
    """A closed set of user-typed names; subclasses list the members."""

    @classmethod
    def parse(cls, text: str) -> Self:
        """The member named ``text``.

        Raises:
            InvalidRequest: no such member; the message lists the allowed names.
        """
        try:
            return cls(text)
        except ValueError:
            what = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()
            allowed = ", ".join(m.value for m in cls)
            raise InvalidRequest(f"unknown {what} {text!r}; use one of: {allowed}") from None
