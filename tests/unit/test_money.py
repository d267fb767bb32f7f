"""settlement.money: the only place amounts and ratios are parsed, rounded and formatted.

Tables of accepted and rejected inputs, each rejection with its exact message (settlement-rules.md §1,
docs/settlement.md "Money"), and the one rounding function in both modes, for ints and numpy arrays.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.money import (
    MAX_AMOUNT_FEN,
    MoneyError,
    apply_ratio,
    format_yuan,
    parse_amount,
    parse_ratio,
    parse_yuan,
    round_div,
    yuan,
)

# ---------------------------------------------------------------------------------------------------------
# parse_amount / parse_yuan


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("12.34", 1234),
        ("0", 0),
        ("0.00", 0),
        ("0.5", 50),
        ("7.10", 710),
        (" 7 ", 700),  # surrounding blanks are tolerated
        ("+5", 500),
        (5, 500),
        (0, 0),
        (Decimal("1.50"), 150),
        (Decimal("1E+2"), 10000),
        (12.5, 1250),  # a float that is exactly a two-place decimal
        (0.25, 25),
        (1e3, 100000),  # the float 1000.0 is exact (only *text* in exponent form is refused)
        ("99999999.99", MAX_AMOUNT_FEN),
        (99999999, 9999999900),
    ],
    ids=repr,
)
def test_parse_amount_accepts(value: object, fen: int) -> None:
    assert parse_amount(value) == fen


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.234", "amount 1.234 has more than two decimal places; amounts are in yuan to the fen"),
        ("1.230", "amount 1.230 has more than two decimal places; amounts are in yuan to the fen"),
        ("1e3", "amount '1e3' uses exponent notation; write plain digits like 1000.00"),
        ("1E3", "amount '1E3' uses exponent notation; write plain digits like 1000.00"),
        ("NaN", "amount 'NaN' is not a finite number"),
        ("nan", "amount 'nan' is not a finite number"),
        ("inf", "amount 'inf' is not a finite number"),
        ("-Infinity", "amount '-Infinity' is not a finite number"),
        ("-5", "amount '-5' must not be negative"),
        ("-0", "amount '-0' must not be negative"),
        (-5, "amount -5 must not be negative"),
        (Decimal("-1"), "amount -1 must not be negative"),
        ("1,000", "amount '1,000' must be plain digits without separators, like 12345.67"),
        ("1_000", "amount '1_000' must be plain digits without separators, like 12345.67"),
        ("", "amount is empty"),
        ("   ", "amount is empty"),
        (".5", "amount '.5' is not a decimal number"),
        ("5.", "amount '5.' is not a decimal number"),
        ("0x10", "amount '0x10' is not a decimal number"),
        (True, "amount must be a number, not true/false"),
        (False, "amount must be a number, not true/false"),
        (
            12.1,
            "amount arrived as a binary floating-point number, which cannot hold 12.1 exactly; "
            'send it as text, e.g. "12.1"',
        ),
        (float("nan"), "amount is not a finite number"),
        (float("inf"), "amount is not a finite number"),
        (Decimal("NaN"), "amount is not a finite number"),
        (Decimal("Infinity"), "amount is not a finite number"),
        (None, "amount must be a decimal number written as text, not NoneType"),
        ([1], "amount must be a decimal number written as text, not list"),
        ("100000000.00", "amount 100000000.00 exceeds the largest accepted amount, 99999999.99 yuan"),
        ("99999999.999", "amount 99999999.999 has more than two decimal places; amounts are in yuan to the fen"),
        (100000000, "amount 100000000 exceeds the largest accepted amount, 99999999.99 yuan"),
    ],
    ids=repr,
)
def test_parse_amount_rejects_with_exact_message(value: object, message: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_amount(value)
    assert str(err.value) == message


@pytest.mark.parametrize("text", ["twelve", "free", "12 yen", "e"])
def test_parse_amount_rejects_words_containing_e(text: str) -> None:
    with pytest.raises(MoneyError, match=r"^amount '"):
        parse_amount(text)


@pytest.mark.parametrize("text", ["twelve", "12 yen", "e5", "1e"])
def test_words_with_an_e_are_not_called_exponent_notation(text: str) -> None:
    # Found while writing these tests: any text containing an "e" used to be reported as "uses exponent
    # notation"; now only a number in exponent form is (fixed in c328d08).
    with pytest.raises(MoneyError) as err:
        parse_amount(text)
    assert str(err.value) == f"amount {text!r} is not a decimal number"


def test_parse_amount_names_the_field() -> None:
    with pytest.raises(MoneyError, match=r"^total '-5' must not be negative$"):
        parse_amount("-5", "total")


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1" * 40, "1" * 40), (10**30, str(10**30)), (Decimal("1E+30"), "1E+30"), ("100000000", "100000000")],
    ids=["40 digits", "int 10**30", "Decimal 1E+30", "1e8"],
)
def test_parse_amount_rejects_absurdly_large_amounts_as_money_errors(value: object, shown: str) -> None:
    # Found while writing these tests: beyond 26 integer digits, Decimal.quantize overflowed the 28-digit
    # context and decimal.InvalidOperation escaped instead of a MoneyError (fixed in c328d08).
    with pytest.raises(MoneyError) as err:
        parse_amount(value)
    assert str(err.value) == f"amount {shown} exceeds the largest accepted amount, 99999999.99 yuan"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.3", "12.30"), ("0", "0.00"), (5, "5.00"), (12.5, "12.50"), (Decimal("1.5"), "1.50")],
    ids=repr,
)
def test_parse_yuan_keeps_yuan_with_two_places(value: object, expected: str) -> None:
    result = parse_yuan(value)
    assert isinstance(result, Decimal)
    assert str(result) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.234", "total 1.234 has more than two decimal places; amounts are in yuan to the fen"),
        ("-1", "total '-1' must not be negative"),
        (
            12.1,
            "total arrived as a binary floating-point number, which cannot hold 12.1 exactly; "
            'send it as text, e.g. "12.1"',
        ),
    ],
    ids=repr,
)
def test_parse_yuan_rejects_like_parse_amount(value: object, message: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_yuan(value, "total")
    assert str(err.value) == message


# ---------------------------------------------------------------------------------------------------------
# parse_ratio


@pytest.mark.parametrize(
    ("value", "ten_thousandths"),
    [
        ("0.655", 6550),
        ("0.6", 6000),
        ("0.6000", 6000),
        ("1", 10000),
        ("1.0000", 10000),
        ("0", 0),
        ("0.0001", 1),
        (1, 10000),
        (0, 0),
        (Decimal("0.5"), 5000),
        (0.5, 5000),  # exactly representable
        (0.25, 2500),
    ],
    ids=repr,
)
def test_parse_ratio_accepts(value: object, ten_thousandths: int) -> None:
    assert parse_ratio(value) == ten_thousandths


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.2", "ratio 1.2 must be between 0 and 1"),
        ("1.00001", "ratio 1.00001 must be between 0 and 1"),
        (2, "ratio 2 must be between 0 and 1"),
        ("-0.1", "ratio '-0.1' must be between 0 and 1"),
        ("0.12345", "ratio 0.12345 has more than four decimal places"),
        ("0.60000", "ratio 0.60000 has more than four decimal places"),
        (Decimal("0.00001"), "ratio 0.00001 has more than four decimal places"),
        (
            0.6,
            "ratio arrived as a binary floating-point number, which cannot hold 0.6 exactly; "
            'send it as text, e.g. "0.6"',
        ),
        (True, "ratio must be a number, not true/false"),
        ("NaN", "ratio 'NaN' is not a finite number"),
        ("1e-1", "ratio '1e-1' uses exponent notation; write plain digits like 1000.00"),
        ("", "ratio is empty"),
        ("60%", "ratio '60%' is not a decimal number"),
    ],
    ids=repr,
)
def test_parse_ratio_rejects_with_exact_message(value: object, message: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_ratio(value)
    assert str(err.value) == message


# ---------------------------------------------------------------------------------------------------------
# round_div / apply_ratio: the one rounding function


@pytest.mark.parametrize(
    ("numerator", "denominator", "half_up", "half_even"),
    [
        (25, 10, 3, 2),  # 2.5: a tie; half-up goes away from zero, half-even to the even 2
        (35, 10, 4, 4),  # 3.5: a tie whose even neighbour is 4, so both modes agree
        (15, 10, 2, 2),  # 1.5 -> 2 both ways
        (5, 10, 1, 0),  # 0.5 -> 1 half-up, 0 half-even
        (24, 10, 2, 2),  # not a tie: nearest
        (26, 10, 3, 3),
        (0, 10, 0, 0),
        (1, 3, 0, 0),  # 0.333..
        (2, 3, 1, 1),  # 0.666..
        (3, 2, 2, 2),  # 1.5
        (5_000, 10_000, 1, 0),  # half a fen in ten-thousandths
        (15_000, 10_000, 2, 2),
        (11_700_006_000, 10_000, 1_170_001, 1_170_001),  # 1170000.6 fen, not a tie
    ],
)
def test_round_div_int(numerator: int, denominator: int, half_up: int, half_even: int) -> None:
    assert round_div(numerator, denominator, "half_up") == half_up
    assert round_div(numerator, denominator, "half_even") == half_even


def test_round_div_numpy_arrays_both_modes() -> None:
    numerators = np.array([25, 35, 15, 5, 24, 26, 0, 45, 2_000_000_000_000_005], np.int64)
    up = round_div(numerators, 10, "half_up")
    even = round_div(numerators, 10, "half_even")
    assert up.dtype == np.int64 and even.dtype == np.int64
    assert up.tolist() == [3, 4, 2, 1, 2, 3, 0, 5, 200_000_000_000_001]
    assert even.tolist() == [2, 4, 2, 0, 2, 3, 0, 4, 200_000_000_000_000]


@pytest.mark.parametrize("mode", ["half_up", "half_even"])
def test_round_div_array_equals_elementwise_int(mode: str) -> None:
    values = np.arange(0, 200, dtype=np.int64)
    as_array = round_div(values, 20, mode).tolist()  # type: ignore[arg-type]
    one_by_one = [round_div(int(v), 20, mode) for v in values]  # type: ignore[arg-type]
    assert as_array == one_by_one


def test_round_div_refuses_unknown_mode() -> None:
    with pytest.raises(ValueError, match=r"^unknown rounding mode 'down'$"):
        round_div(1, 2, "down")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "ratio", "mode", "expected"),
    [
        # 19500.01 yuan x 0.6 = 11700.006 yuan = 1170000.6 fen -> 1170001 fen
        (1_950_001, 6000, "half_up", 1_170_001),
        (1_950_001, 6000, "half_even", 1_170_001),
        # 0.01 yuan x 0.5 = half a fen: 1 half-up, 0 half-even
        (1, 5000, "half_up", 1),
        (1, 5000, "half_even", 0),
        # 0.03 yuan x 0.5 = 1.5 fen: 2 both ways
        (3, 5000, "half_up", 2),
        (3, 5000, "half_even", 2),
        (600_001, 5000, "half_up", 300_001),  # 6000.01 x 0.5 = 3000.005
        (600_001, 5000, "half_even", 300_000),
    ],
)
def test_apply_ratio_rounds_once(amount: int, ratio: int, mode: str, expected: int) -> None:
    assert apply_ratio(amount, ratio, mode) == expected  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# format_yuan / yuan


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (50, "0.50"),
        (100, "1.00"),
        (123_456, "1234.56"),
        (MAX_AMOUNT_FEN, "99999999.99"),
        (-5, "-0.05"),
        (-123_456, "-1234.56"),
        (np.int64(100_001), "1000.01"),
    ],
    ids=repr,
)
def test_format_yuan(fen: int, text: str) -> None:
    assert format_yuan(fen) == text


@given(st.integers(-MAX_AMOUNT_FEN, MAX_AMOUNT_FEN))
def test_format_yuan_is_the_exact_decimal_text(fen: int) -> None:
    assert format_yuan(fen) == str(yuan(fen)) == format_yuan(np.int64(fen))


@pytest.mark.parametrize("text", ["0.00", "0.01", "12.30", "1234.56", "99999999.99"])
def test_parse_then_format_round_trips(text: str) -> None:
    fen = parse_amount(text)
    assert format_yuan(fen) == text
    assert yuan(fen) == Decimal(text)
    assert str(yuan(fen)) == text
