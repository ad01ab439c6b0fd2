"""apimachinery's `resource.Quantity`, as far as the API server's checks need it.

A real server parses quantities while decoding the body: a malformed one is a 400 before
any validation runs. Validation then compares values (requests ≤ limits, ≥ 0).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

# The expression a real server quotes in its error.
EXPRESSION = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_STRICT = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse(value: Any) -> Fraction | None:
    """The quantity's value, or None when a real server could not decode it."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    found = _STRICT.match(text)
    if found is None:
        return None
    number = Fraction(found["number"])
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * (1 << _BINARY[suffix])
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number * (Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent))
