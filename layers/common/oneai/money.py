"""Money as the API writes it: a decimal string, exact, never a float or an exponent (`"0.000123"`)."""

from __future__ import annotations

from decimal import Decimal


def plain_decimal(value: Decimal) -> str:
    """`0.00150000` -> `"0.0015"`, `10.00000000` -> `"10"`: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def balance_decimal(value: Decimal) -> str:
    """A balance as the API writes it: at least cents, exact beyond them (`"0.00"`, `"12.50"`, `"0.0015"`)."""
    text = plain_decimal(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
