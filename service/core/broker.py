"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own (5.x) creates a message file and then writes it, so a worker polling the folder
can take the file while it is still empty and die on the JSON (seen on a first submit); it
takes a message by moving the file to the system's temporary folder (outside the data
folder, and a copy where that is another filesystem, so two workers can both take it).
Here a message is written whole under a name no reader takes, then renamed into the queue
folder; a reader claims it by renaming it within the data folder (atomic: exactly one
reader wins); a message that still does not parse is set aside in `broken/` and logged, and
the worker lives on.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)
SCHEME = "checkerless-fs"
_PARTIAL = ".part"  # a message being written: no reader takes names that do not end in .msg


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = Path(self.data_folder_out) / name
        partial = final.with_name(name + _PARTIAL)
        partial.write_bytes(dumps(payload).encode())
        os.replace(partial, final)

    def _get(self, queue):
        inbox, claimed = Path(self.data_folder_in), Path(self.processed_folder)
        for name in sorted(os.listdir(inbox)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            mine = claimed / name
            try:
                os.rename(inbox / name, mine)
            except OSError:  # another reader took it first
                continue
            data = mine.read_bytes()
            try:
                message = loads(data.decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                broken = claimed.parent / "broken"
                broken.mkdir(exist_ok=True)
                os.replace(mine, broken / name)
                log.error("a message in the embedded broker does not parse; set aside as %s", broken / name)
                continue
            mine.unlink()
            return message
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
