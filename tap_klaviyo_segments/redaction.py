"""Keep the API key out of every log line, whatever logger or handler writes it.

The tap never puts the key in a message on purpose; this is the safety net for text it does not
control (a proxy's error page echoing request headers, a library's exception, a config error
quoting a mistyped value). :func:`register_secret` adds a value and, the first time, wraps the
log-record factory, so every record of every logger is scrubbed when it is created: before any
handler, filter or formatter (singer-sdk's console and JSON formatters, pytest, Meltano) sees it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

MASK = "***REDACTED***"

#: Shorter strings are not redacted: masking "pk" or "1" everywhere would garble the logs.
_MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: Any) -> None:
    """Mask ``value`` (a string, or the strings inside a list or dict) in all later log records."""
    found = _strings(value)
    with _lock:
        _secrets.update(s for s in found if len(s) >= _MIN_SECRET_LENGTH)
        _install_record_factory()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`MASK`."""
    for secret in _sorted_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def cut(text: str, limit: int) -> str:
    """``text`` masked, then cut to ``limit`` characters.

    Masking comes first: a cut through the key would leave a prefix of it that :func:`redact`
    no longer recognises.
    """
    return redact(text)[:limit]


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret."""
    return any(secret in text for secret in _sorted_secrets())


def _sorted_secrets() -> list[str]:
    # Longest first, so a secret that contains another is masked whole.
    with _lock:
        return sorted(_secrets, key=len, reverse=True)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        stripped = value.strip()
        return [value, stripped] if stripped and stripped != value else [value]
    if isinstance(value, dict):
        return [s for item in value.items() for part in item for s in _strings(part)]
    if isinstance(value, (list, tuple, set)):
        return [s for item in value for s in _strings(item)]
    return []


def _install_record_factory() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def scrub_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message, traceback and stack, in place."""
    if not _secrets:
        return
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    if contains_secret(message):
        record.msg = redact(message)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if contains_secret(text):
            # The formatter prints exc_text when exc_info is gone; the exception is not kept.
            record.exc_text = redact(text)
            record.exc_info = None
    if record.stack_info and contains_secret(record.stack_info):
        record.stack_info = redact(record.stack_info)
