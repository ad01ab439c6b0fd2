"""Kubernetes resource quantities (`250m`, `1.5Gi`, `1e3`), parsed as the API server does.

`shipyard validate` compares an agent's requests with its limits before a cluster would
refuse them, and that needs the values, not just the syntax. Exact fractions, so `1Gi`
and `1024Mi` compare equal.
"""

from __future__ import annotations

import re
from fractions import Fraction

# apimachinery's grammar: a signed decimal number, then a binary suffix, a decimal suffix
# or a decimal exponent.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    """Not a quantity the API server would accept."""


def parse(value: str | int | float) -> Fraction:
    """The quantity's exact value; `QuantityError` when a cluster would refuse it."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    else:
        text = value
    found = _QUANTITY.match(text)
    if found is None:
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity (a number with an optional suffix such "
            "as m, k, M, G, Ki, Mi, Gi)"
        )
    number = Fraction(found["number"])
    if number < 0:
        raise QuantityError(f"{text!r} is negative; resources must be at least 0")
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * (1 << _BINARY[suffix])
    # A decimal suffix, or an exponent such as e3.
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number * _power_of_ten(exponent)


def _power_of_ten(exponent: int) -> Fraction:
    return Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent)
