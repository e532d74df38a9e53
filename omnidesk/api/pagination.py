"""The API's pages: `?limit=&offset=`, 50 rows by default, at most MAX_LIMIT per page."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

#: a larger `limit` is served as this many (the database refuses a LIMIT beyond 64 bits with an error)
MAX_LIMIT = 500


class Pagination(LimitOffsetPagination):
    """DRF's limit/offset pages with a ceiling on `limit`, as every public helpdesk API has (Zendesk 100)."""

    max_limit = MAX_LIMIT
