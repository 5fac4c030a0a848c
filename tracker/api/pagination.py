from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination

from ..caching import cached


class Pagination(PageNumberPagination):
    """Pages of `{count, next, previous, results}`; `page_size` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class KeysFirstPaginator(Paginator):
    """Find a page's ids first, then read those rows: the database skips the rows before the
    page (OFFSET) in an index instead of reading each of them whole. With a `count_key`, the
    count is kept until the data next changes (tracker.caching): every page of one list has
    the same count. With `ids_only`, a page holds its ids alone, kept likewise. A list whose
    rows no status can move in, out or around (`status_blind`) keeps its count and ids
    through recorded statuses.

    Only for lists without annotations over other rows (a window over the page alone would
    differ) and not DISTINCT (whose subquery would carry the ordering columns)."""

    def __init__(
        self, object_list, per_page, *, count_key=None, status_blind=False, ids_only=False, **kw
    ):
        super().__init__(object_list, per_page, **kw)
        self.count_key = count_key
        self.status_blind = status_blind
        self.ids_only = ids_only

    @cached_property
    def count(self):
        count_rows = self.object_list.count
        if self.count_key is None:
            return count_rows()
        return cached(self.count_key, count_rows, through_status_writes=self.status_blind)

    def page(self, number):
        page = super().page(number)
        rows = page.object_list
        if self.ids_only:

            def read_ids():
                return list(rows.values_list("pk", flat=True))

            page.object_list = (
                read_ids()
                if self.count_key is None
                else cached(
                    (*self.count_key, "ids", number, self.per_page),
                    read_ids,
                    through_status_writes=self.status_blind,
                )
            )
        elif isinstance(rows, QuerySet) and not rows.query.distinct:
            page.object_list = self.object_list.filter(pk__in=rows.values("pk"))
        return page


class KeysFirstPagination(Pagination):
    """Pages from KeysFirstPaginator; the view sets `count_key` (what the count depends on)
    and `status_blind`, and may ask for the page's ids only (`ids_only`), to read its rows
    its own way."""

    count_key = None
    status_blind = False
    ids_only = False

    def django_paginator_class(self, object_list, per_page):
        return KeysFirstPaginator(
            object_list,
            per_page,
            count_key=self.count_key,
            status_blind=self.status_blind,
            ids_only=self.ids_only,
        )
