"""Money: the only place amounts and ratios are parsed, rounded and formatted.

Inside the engine an amount is an integer number of fen (分, 1/100 yuan) and a ratio is an integer number
of ten-thousandths (0.655 -> 6550). Outside it both are `Decimal`. Binary floating point never touches
either: a float is accepted on input only when it equals a decimal with few enough places (12.5 yes,
12.1 no, because the float 12.1 is really 12.0999999999999996447...).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, TypeVar, overload

import numpy as np
import numpy.typing as npt

FEN_PER_YUAN: Final = 100
RATIO_SCALE: Final = 10_000
# A single amount of a hundred million yuan is far beyond any hospital bill; the bound keeps every
# intermediate product (amount x ratio, summed over a year of claims) well inside int64.
MAX_AMOUNT_FEN: Final = 100_000_000 * FEN_PER_YUAN - 1
# "No cap": larger than any sum the engine can reach, small enough that `cap - paid` cannot overflow.
NO_CAP: Final = 2**62

Rounding = Literal["half_up", "half_even"]

_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_RATIO_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_EXPONENT_TEXT = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)e[+-]?[0-9]+")
_TWO_PLACES = Decimal("0.01")
_LARGEST = Decimal(MAX_AMOUNT_FEN) / FEN_PER_YUAN


class MoneyError(ValueError):
    """An amount or ratio that cannot be accepted; the message says why, in words a clerk understands."""


def _decimal_from(value: object, what: str) -> Decimal:
    """Turn text, int, Decimal or an exactly-decimal float into a Decimal, or say why not."""
    if isinstance(value, bool):
        raise MoneyError(f"{what} must be a number, not true/false")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MoneyError(f"{what} is not a finite number")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise MoneyError(f"{what} is not a finite number")
        exact = Decimal(value)
        # repr() gives the shortest text that reads back as this float; if that text is not the float's
        # exact value, the sender meant a decimal that binary floating point cannot hold.
        if exact != Decimal(repr(value)):
            meant = f"{Decimal(repr(value)):f}"
            raise MoneyError(
                f"{what} arrived as a binary floating-point number, which cannot hold {meant} exactly; "
                f'send it as text, e.g. "{meant}"'
            )
        return exact
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MoneyError(f"{what} is empty")
        lowered = text.lower()
        if lowered.lstrip("+-.") in ("nan", "inf", "infinity", "snan"):
            raise MoneyError(f"{what} {text!r} is not a finite number")
        if text.startswith("-"):
            raise MoneyError(f"{what} {text!r} must not be negative")
        if _EXPONENT_TEXT.fullmatch(lowered.lstrip("+")):
            raise MoneyError(f"{what} {text!r} uses exponent notation; write plain digits like 1000.00")
        if "," in text or "_" in text:
            raise MoneyError(f"{what} {text!r} must be plain digits without separators, like 12345.67")
        if not _AMOUNT_TEXT.fullmatch(text.lstrip("+")):
            raise MoneyError(f"{what} {text!r} is not a decimal number")
        try:
            return Decimal(text)
        except InvalidOperation as err:  # pragma: no cover - the pattern above already excludes this
            raise MoneyError(f"{what} {text!r} is not a decimal number") from err
    raise MoneyError(f"{what} must be a decimal number written as text, not {type(value).__name__}")


def parse_amount(value: object, what: str = "amount") -> int:
    """Yuan (text such as "1234.56", an int, a Decimal) -> fen. Rejects negatives, a third decimal,
    exponent notation, NaN, infinity and anything above 99,999,999.99 yuan."""
    amount = _decimal_from(value, what)
    if amount < 0:
        raise MoneyError(f"{what} {amount} must not be negative")
    exponent = amount.normalize().as_tuple().exponent
    if (isinstance(exponent, int) and exponent < -2) or (isinstance(value, str) and _places(value) > 2):
        raise MoneyError(f"{what} {value} has more than two decimal places; amounts are in yuan to the fen")
    if amount > _LARGEST:
        raise MoneyError(f"{what} {value} exceeds the largest accepted amount, 99999999.99 yuan")
    return int(amount * FEN_PER_YUAN)


def parse_yuan(value: object, what: str = "amount") -> Decimal:
    """Like parse_amount, but keeps yuan: a Decimal with exactly two places."""
    return yuan(parse_amount(value, what))


def parse_ratio(value: object, what: str = "ratio") -> int:
    """A ratio in [0, 1] with at most 4 decimal places -> ten-thousandths (0.655 -> 6550)."""
    if isinstance(value, str) and value.strip().startswith("-"):
        raise MoneyError(f"{what} {value.strip()!r} must be between 0 and 1")
    ratio = _decimal_from(value, what)
    if ratio < 0 or ratio > 1:
        raise MoneyError(f"{what} {ratio} must be between 0 and 1")
    scaled = ratio * RATIO_SCALE
    if scaled != scaled.to_integral_value() or (isinstance(value, str) and _places(value) > 4):
        raise MoneyError(f"{what} {value} has more than four decimal places")
    return int(scaled)


def _places(text: str) -> int:
    text = text.strip()
    return len(text) - text.index(".") - 1 if "." in text else 0


def yuan(fen: int) -> Decimal:
    """Fen -> Decimal yuan with exactly two places."""
    return (Decimal(int(fen)) / FEN_PER_YUAN).quantize(_TWO_PLACES)


def format_yuan(fen: int) -> str:
    """Fen -> "1234.56": the one text form of money that leaves the engine."""
    fen = int(fen)
    if fen < 0:
        return "-" + format_yuan(-fen)
    yuan_part, fen_part = divmod(fen, FEN_PER_YUAN)
    return f"{yuan_part}.{_FEN_TEXT[fen_part]}"


# A settlement's record holds some sixty amounts: the two digits after the point are looked up rather than
# formatted, which takes a third off each.
_FEN_TEXT: Final = tuple(f"{n:02d}" for n in range(FEN_PER_YUAN))


def ratio_decimal(ten_thousandths: int) -> Decimal:
    """Ten-thousandths -> Decimal ratio with four places (the national platform's (5,4) format)."""
    return (Decimal(int(ten_thousandths)) / RATIO_SCALE).quantize(Decimal("0.0001"))


def fen_from_decimal(amount: Decimal) -> int:
    """A Decimal already validated to the fen -> fen."""
    return int(amount * FEN_PER_YUAN)


def ratio_from_decimal(ratio: Decimal) -> int:
    """A Decimal ratio already validated to 4 places -> ten-thousandths."""
    return int(ratio * RATIO_SCALE)


IntOrArray = TypeVar("IntOrArray", int, npt.NDArray[np.int64])


@overload
def round_div(numerator: int, denominator: int, mode: Rounding) -> int: ...
@overload
def round_div(numerator: npt.NDArray[np.int64], denominator: int, mode: Rounding) -> npt.NDArray[np.int64]: ...
def round_div(numerator: int | npt.NDArray[np.int64], denominator: int, mode: Rounding) -> object:
    """The one rounding function: numerator / denominator to the nearest integer, ties by `mode`.

    `half_up` is 四舍五入 (ties away from zero); `half_even` is banker's rounding, which Jilin's
    medical-assistance system used. Numerators are never negative here: payments and bases are not.
    """
    if mode == "half_up":
        # n = q·d + r: adding ⌊d/2⌋ carries into q exactly when r ≥ d/2 (r > d/2 for odd d, where no tie exists).
        return (numerator + denominator // 2) // denominator
    quotient, remainder = divmod(numerator, denominator)
    twice = remainder * 2
    if mode == "half_even":
        return quotient + ((twice > denominator) | ((twice == denominator) & (quotient % 2 == 1)))
    raise ValueError(f"unknown rounding mode {mode!r}")


def apply_ratio(amount_fen: IntOrArray, ratio: int | npt.NDArray[np.int64], mode: Rounding) -> IntOrArray:
    """amount x ratio, rounded once to the fen."""
    return round_div(amount_fen * ratio, RATIO_SCALE, mode)  # type: ignore[return-value]
