"""The checks of config values and the lines users see when one fails, each once and one line.

The readers below turn a value the JSON schema accepted into its :class:`Settings` field (the
table in ``settings.py`` names each key's reader), raising ``ValueError`` with the message. The
rest words what the schema's own errors say too loosely (unknown keys, whole numbers from the
environment) and the warnings about a start_date that is valid but reports less than expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_klaviyo_segments.planning import FIRST_DATA_DAY, local_midnight
from tap_klaviyo_segments.redaction import cut, redact

if TYPE_CHECKING:
    from tap_klaviyo_segments.settings import Setting

#: Klaviyo segment ids are short alphanumeric strings; anything else would break the filter text.
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")

#: Where a user reads the accepted keys (and their meaning), instead of a 700-character list.
ACCEPTED_KEYS_HINT = "`tap-klaviyo-segments --about` lists the accepted keys"


# ----- readers: a value the schema accepted, into its Settings field --------------------------
def api_key(_: Setting, value: Any) -> None:
    """Reject what would break the header (and make requests quote the key in its error).

    Header values go out as Latin-1, and Klaviyo's keys are ASCII: anything else would end in a
    UnicodeEncodeError deep inside http.client. The message never quotes the key.
    """
    if not isinstance(value, str):
        return
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            "api_key must be the key alone (pk_...), without spaces, line breaks or control "
            "characters; a trailing newline from a secrets file is the usual cause"
        )
    if not value.isascii():
        position = next(i for i, c in enumerate(value) if not c.isascii()) + 1
        raise ValueError(
            f"api_key holds a character an HTTP header cannot carry (character {position} is "
            "not ASCII); Klaviyo keys are pk_ and letters and digits: copy the key again"
        )


def flag(_: Setting, value: Any) -> bool:
    """A boolean the schema checked."""
    return bool(value)


def text(_: Setting, value: Any) -> str:
    """A string the schema checked (against the choices, if the setting has any)."""
    return str(value)


def revision(setting: Setting, value: Any) -> str:
    """A revision date as Klaviyo names them; anything else would be its 400 on every call."""
    if not _REVISION.match(str(value)):
        raise ValueError(
            f"revision must look like YYYY-MM-DD (e.g. {setting.default}), not {value!r}"
        )
    return str(value)


def timezone_name(_: Setting, value: Any) -> ZoneInfo:
    """An IANA timezone Python knows, since every window is cut in it."""
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"account_timezone must be an IANA timezone name such as 'UTC' or "
            f"'America/New_York', not {value!r}"
        ) from None


def first_moment(setting: Setting, value: Any) -> datetime | None:
    """A date or date-time as naive local wall-clock time; an offset is dropped, as Klaviyo does."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            return local_midnight(date.fromisoformat(text))
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise ValueError(
            f"{setting.key} must be a date (2024-01-31) or date-time (2024-01-31T00:00:00Z), "
            f"not {value!r}"
        ) from None


def end_moment(setting: Setting, value: Any) -> datetime | None:
    """As :func:`_first_moment`, but a bare date means "through that day": the next midnight."""
    moment = first_moment(setting, value)
    if moment is not None and len(str(value).strip()) == 10:
        return moment + timedelta(days=1)
    return moment


def number(setting: Setting, value: Any) -> float | int:
    """A number or numeric text, within the setting's bounds.

    The schema also lets text through (an environment value is text), so the bounds a JSON
    schema checks only on numbers are checked here for both forms, from the same declaration.
    """
    whole = setting.kind == "integer"
    number: float | int | None = None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = value if isinstance(value, int) else float(value)  # JSON fractions: Decimal
    elif isinstance(value, str):
        try:
            number = int(value.strip()) if whole else float(value.strip())
        except ValueError:
            number = None
    low, above = setting.minimum, setting.exclusive_minimum
    if (
        number is None
        or not math.isfinite(number)
        or (whole and not float(number).is_integer())
        or (low is not None and number < low)
        or (above is not None and number <= above)
    ):
        bounds = [f">= {low}"] if low is not None else []
        bounds += [f"> {above}"] if above is not None else []
        expected = f"{'a whole number' if whole else 'a number'} {' and '.join(bounds)}".strip()
        raise ValueError(f"{setting.key} must be {expected}, not {value!r}")
    return int(number) if whole else number


def days(setting: Setting, value: Any) -> timedelta:
    """A whole number of days, as a duration."""
    return timedelta(days=number(setting, value))


def segment_ids(_: Setting, value: Any) -> tuple[str, ...] | None:
    """Ids a filter can carry, each once (the schema leaves these to the reader: see above)."""
    if value is None:
        return None
    bad = [item for item in value if not isinstance(item, str) or not _SEGMENT_ID.match(item)]
    if bad:
        raise ValueError(
            f"segment_ids must be Klaviyo segment ids (letters, digits, '_' or '-'); "
            f"these are not: {', '.join(repr(item) for item in bad[:5])}"
        )
    repeated = [sid for sid, count in Counter(value).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(sid) for sid in repeated[:10])
        more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        raise ValueError(
            f"segment_ids has non-unique elements: {shown}{more} listed more than once; "
            "list each id once"
        )
    return tuple(value)


def choice_list(_: Setting, value: Any) -> tuple[str, ...]:
    """The schema has checked each item against the choices, and that there is one at least."""
    return tuple(dict.fromkeys(value))


def api_url(setting: Setting, value: Any) -> str:
    """Allow plain http only to loopback, so the key never crosses a network in clear text."""
    url = str(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"api_url must be a URL with its scheme, such as {setting.default} (plain http:// "
            f"only to 127.0.0.1 or localhost, for a local stand-in), not {url!r}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"api_url must use https:// (plain http is only allowed to 127.0.0.1 or localhost, "
            f"for a local stand-in), not {url!r}"
        )
    if parts.path.lower().endswith("/api"):
        base = url[: -len("/api")]
        raise ValueError(
            f"api_url is the address before /api (the tap adds /api/segments and the rest): "
            f"drop /api and set {base!r}, not {url!r}"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def date_order_problems(
    start: datetime, end: datetime | None, given: Mapping[str, Any]
) -> list[str]:
    """An end_date before the data, or before start_date: the run would report nothing."""
    if end is not None and end <= FIRST_DATA_DAY:
        return [
            f"end_date ({given.get('end_date')}) is before 2023-06-01, when Klaviyo's segment "
            "data begins, so the run would report nothing: set end_date to a later day than "
            "start_date, or leave it out to report up to now"
        ]
    if end is not None and end <= start:
        return [
            f"start_date ({given.get('start_date') or start.date().isoformat()}) must be before "
            f"end_date ({given.get('end_date')}); Klaviyo has no segment data before 2023-06-01"
        ]
    return []


# ----- what the schema says too loosely -----------------------------------------------------


def schema_problems(
    errors: Sequence[str], config: Mapping[str, Any], accepted: Sequence[str]
) -> list[str]:
    """The schema's errors without the key's value, and each unknown key on a line of its own.

    ``accepted`` is every key the tap takes, its own and singer-sdk's. An unknown key's line
    names the closest accepted key and where to see them all, not the whole list.
    """
    unknown = [key for key in config if key not in accepted]
    clearer = []
    for error in errors:
        if error.startswith("Additional properties are not allowed") and unknown:
            clearer += [unknown_key_problem(key, accepted) for key in unknown]
        else:
            clearer.append(redact(error))
    return clearer


def unknown_key_problem(key: str, accepted: Sequence[str]) -> str:
    """The key, the closest accepted one if any, and where to see them all."""
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"config key {cut(repr(key), 60)} is unknown{hint}; {ACCEPTED_KEYS_HINT}"


def environment_integer_problems(schema: Mapping[str, Any], prefix: str) -> list[str]:
    """Whole-number settings in the environment that are not whole numbers, one message each.

    singer-sdk turns an integer setting's environment value into an int itself, before the
    tap's checks run, and a value such as ``abc`` would end in its traceback instead.
    """
    problems = []
    for key, spec in schema.get("properties", {}).items():
        kinds = spec.get("type", [])
        name = prefix + key.upper().replace("-", "_")
        value = os.environ.get(name)
        if value is None or "integer" not in ([kinds] if isinstance(kinds, str) else kinds):
            continue
        try:
            int(value)
        except ValueError:
            problems.append(
                f"{name} ({key}) must be a whole number, not {cut(redact(repr(value)), 40)}"
            )
    return problems


def start_date_warnings(given: Any, start: datetime, local_now: datetime) -> list[str]:
    """A valid start_date that reports less than a user may expect: before the data, or later."""
    if start < FIRST_DATA_DAY:
        return [
            f"start_date {given} is before 2023-06-01, when Klaviyo's segment data begins; "
            "reporting from 2023-06-01"
        ]
    if start > local_now:
        return [
            f"start_date {given} is in the future (account time): there is nothing to report "
            "until then, so this run reports no segment_series rows"
        ]
    return []
