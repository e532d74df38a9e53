"""The column type of the per-ticket report samples (omnidesk/reports/facts.py)."""

from __future__ import annotations

import json
import struct
from typing import Any

from django.db import models


class SampleListField(models.Field):  # type: ignore[type-arg]
    """A list of seconds: on PostgreSQL a bytea of big-endian float8 values back to back, JSON text elsewhere.

    The bytes are what float8send gives for each value, so the parity report concatenates the lists
    of a million tickets with string_agg and numpy reads the result as it comes: nothing is unnested
    or converted per value in the database (unnesting float8[] lists was the report's costliest part;
    docs/benchmarks.md, bench/parity.py, session 5).
    """

    description = "a list of floats"

    def db_type(self, connection: Any) -> str:
        return "bytea" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[float] | None:
        return self.to_python(value)

    def to_python(self, value: Any) -> list[float] | None:
        if isinstance(value, str):
            return json.loads(value)  # type: ignore[no-any-return]
        if isinstance(value, (bytes, memoryview)):
            return list(struct.unpack(f">{len(value) // 8}d", value))
        return value  # type: ignore[no-any-return]

    def get_prep_value(self, value: Any) -> bytes | None:
        """The PostgreSQL bytes (rows_insert sends them in bytea's hex form)."""
        return None if value is None else struct.pack(f">{len(value)}d", *value)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None or connection.vendor == "postgresql":
            return self.get_prep_value(value)
        return json.dumps([float(v) for v in value])

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))
