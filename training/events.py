"""The run's event log: one JSON object a line in ``out_dir/<experiment>/log.jsonl``."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from pyser._io import strict_json

__all__ = ["EventLog"]


class EventLog:
    """JSON-lines event log (rank 0 only: the other ranks pass ``path=None``).

    ``events("eval", step=10, dev_ua=0.5)`` appends ``{"time", "event", **fields}`` as
    strict JSON (NaN becomes null).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        record = {
            "time": _dt.datetime.now().isoformat(timespec="seconds"),
            "event": event,
            **fields,
        }
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(strict_json(record) + "\n")
