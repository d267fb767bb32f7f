"""Errors as values: each names the place in the input and says what is wrong, so that one run reports
every problem of a claim, a batch or a policy file at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in the input: where it is (`claims[3].total`) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ClaimError(ValueError):
    def __init__(self, errors: Sequence[FieldError]):
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in errors))


def field_errors(err: ValidationError, prefix: str = "", whole: str = "claim") -> list[FieldError]:
    """Pydantic's errors in the words of this project: a dotted field path and a plain message."""
    out = []
    for item in err.errors():
        path = prefix
        for part in item["loc"]:
            path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
        message = str(item["msg"])
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(noise)
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "is required"
        out.append(FieldError(path or whole, message))
    return out
