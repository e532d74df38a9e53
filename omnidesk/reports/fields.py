"""The column type of the per-ticket report samples (omnidesk/reports/facts.py)."""

from __future__ import annotations

import json
from typing import Any

from django.db import models


class SampleListField(models.Field):  # type: ignore[type-arg]
    """A list of seconds: a float8[] on PostgreSQL, JSON text elsewhere.

    The parity report unnests these lists for every ticket in its range (a million at a time); a
    native array is read several times faster than JSON, whose elements are parsed from text.
    """

    description = "a list of floats"

    def db_type(self, connection: Any) -> str:
        return "double precision[]" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[float] | None:
        if value is None or isinstance(value, list):
            return value
        return json.loads(value)

    def to_python(self, value: Any) -> list[float] | None:
        return json.loads(value) if isinstance(value, str) else value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        floats = [float(v) for v in value]
        return floats if connection.vendor == "postgresql" else json.dumps(floats)

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))
