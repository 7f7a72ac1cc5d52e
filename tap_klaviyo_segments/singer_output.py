"""How the tap writes its Singer messages: singer-sdk's msgspec writer.

singer-sdk's default writer spends most of a record's CPU in simplejson (see BENCHMARKS.md);
``singer_sdk.contrib.msgspec`` writes the same messages (same keys, same values, compact JSON)
several times faster. Two differences, both valid Singer JSON: non-ASCII text is written as
UTF-8 instead of ASCII escapes, and ``time_extracted`` ends in ``Z`` instead of ``+00:00``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.singerlib.messages import StateMessage
from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message


class SingerWriter(MsgSpecWriter):
    """The msgspec writer, which also writes to a text-only stdout (one without ``.buffer``).

    msgspec's writer writes bytes to ``sys.stdout.buffer``; a stdout replaced by a text stream
    (``contextlib.redirect_stdout(io.StringIO())``, as the tests and some embedders do) has no
    buffer, so there the line is decoded and written as text. Each message is still flushed,
    as singer-sdk does, so a target sees every STATE as soon as it is written.
    """

    @override
    def serialize_message(self, message: Message) -> bytearray:
        """One line of JSON; a STATE without the deep copy ``dataclasses.asdict`` makes.

        A STATE holds every bookmark partition (one per segment and interval) and is written
        after every report call, so copying it once more just to serialise it shows in the
        profile (BENCHMARKS.md). The dict is the same one ``asdict`` would build.
        """
        if type(message) is StateMessage:
            return serialize_jsonl({"type": "STATE", "value": message.value})
        return super().serialize_message(message)

    #: True while a line is being written.
    writing = False
    #: A signal's handler that came while a line was half written: it runs once the line is whole.
    deferred: Callable[[], None] | None = None

    @override
    def write_message(self, message: Message) -> None:
        """Write one message as a line of JSON and flush it.

        A SIGINT or SIGTERM handler that writes the final STATE must not do so in the middle of
        a line (a target would read half a RECORD glued to a STATE): the tap's handler defers
        itself to :attr:`deferred` while :attr:`writing` is set, and it runs here, after the line.
        """
        out = sys.stdout
        line = self.format_message(message)
        buffer = getattr(out, "buffer", None)
        self.writing = True
        try:
            if buffer is not None:
                buffer.write(line)
            else:
                out.write(line.decode())
            out.flush()
        finally:
            self.writing = False
        deferred, self.deferred = self.deferred, None
        if deferred is not None:
            deferred()
