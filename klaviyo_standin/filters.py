"""A small parser for Klaviyo's filter syntax, e.g. ``any(segment_id,["a","b"])``.

Supports ``op(field,value)`` conditions, a top-level comma list or ``and(...)`` of them (all must
hold), and values that are quoted strings, lists, booleans, ``null``, numbers or bare ISO
date-times. Anything else raises :class:`FilterError`, which the server turns into a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

FilterValue = object


class FilterError(ValueError):
    """The filter string is not valid Klaviyo filter syntax (or not allowed here)."""


@dataclass(frozen=True)
class Condition:
    """One ``operator(field,value)`` condition."""

    operator: str
    field: str
    value: FilterValue


class _Parser:
    """Recursive-descent parser over the filter text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise FilterError(f"Expected {char!r} at position {self.pos} in filter.")
        self.pos += 1

    def word(self) -> str:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "_-."
        ):
            self.pos += 1
        if start == self.pos:
            raise FilterError(f"Expected a name at position {start} in filter.")
        return self.text[start : self.pos]

    def conditions(self) -> list[Condition]:
        """Parse ``cond(,cond)*`` where ``and(...)`` is flattened."""
        found = self.condition()
        while self.peek() == ",":
            self.pos += 1
            found += self.condition()
        return found

    def condition(self) -> list[Condition]:
        operator = self.word()
        self.expect("(")
        if operator == "and":
            found = self.conditions()
            self.expect(")")
            return found
        field = self.word()
        self.expect(",")
        value = self.value()
        self.expect(")")
        return [Condition(operator, field, value)]

    def value(self) -> FilterValue:
        char = self.peek()
        if char in "\"'":
            return self.string(char)
        if char == "[":
            return self.list_value()
        return self.bare()

    def string(self, quote: str) -> str:
        self.pos += 1
        end = self.text.find(quote, self.pos)
        if end < 0:
            raise FilterError("Unterminated string in filter.")
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def list_value(self) -> list[FilterValue]:
        self.expect("[")
        items: list[FilterValue] = []
        if self.peek() == "]":
            self.pos += 1
            return items
        items.append(self.value())
        while self.peek() == ",":
            self.pos += 1
            items.append(self.value())
        self.expect("]")
        return items

    def bare(self) -> FilterValue:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",)]":
            self.pos += 1
        return _bare_value(self.text[start : self.pos].strip())


def _bare_value(token: str) -> FilterValue:
    """Interpret an unquoted token: boolean, null, number or ISO date-time (UTC if no offset)."""
    literals: dict[str, FilterValue] = {"true": True, "false": False, "null": None}
    if token in literals:
        return literals[token]
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(token.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"Invalid value in filter: {token!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_filter(text: str) -> list[Condition]:
    """Parse a filter string into its conditions (all of which must hold)."""
    parser = _Parser(text)
    found = parser.conditions()
    if parser.peek():
        raise FilterError(f"Unexpected text at position {parser.pos} in filter.")
    return found
