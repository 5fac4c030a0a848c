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
    the same count. With `keep_ids`, a page's ids are kept likewise, and a page holds them
    alone when they were kept (its rows when they were read). A list whose rows no status
    can move in, out or around (`status_blind`) keeps its count and ids through recorded
    statuses.

    Only for lists without annotations over other rows (a window over the page alone would
    differ) and not DISTINCT (whose subquery would carry the ordering columns)."""

    def __init__(
        self, object_list, per_page, *, count_key=None, status_blind=False, keep_ids=False, **kw
    ):
        super().__init__(object_list, per_page, **kw)
        self.count_key = count_key
        self.status_blind = status_blind
        self.keep_ids = keep_ids

    @cached_property
    def count(self):
        count_rows = self.object_list.count
        if self.count_key is None:
            return count_rows()
        return cached(self.count_key, count_rows, through_status_writes=self.status_blind)

    def page(self, number):
        if self.keep_ids and self.count_key is not None:
            return self.kept_page(number)
        return self.page_read(number)

    def page_read(self, number):
        page = super().page(number)
        rows = page.object_list
        if isinstance(rows, QuerySet) and not rows.query.distinct:
            page.object_list = self.object_list.filter(pk__in=rows.values("pk"))
        return page

    def kept_page(self, number):
        """A page whose count and ids are kept together, one cache read when kept: it holds
        its ids alone when they were kept, else its rows, read now."""
        read = []

        def read_page():
            read.extend(self.page_read(number))
            return self.count, [row.pk for row in read]

        count, ids = cached(
            (*self.count_key, "page", number, self.per_page),
            read_page,
            through_status_writes=self.status_blind,
        )
        self.__dict__["count"] = count  # the count the ids were read with
        page = super().page(number)
        page.object_list = read or ids
        return page


class KeysFirstPagination(Pagination):
    """Pages from KeysFirstPaginator; the view sets `count_key` (what the count depends on)
    and `status_blind`, and may ask for a page's ids to be kept (`keep_ids`), to keep its
    rows its own way."""

    count_key = None
    status_blind = False
    keep_ids = False

    def django_paginator_class(self, object_list, per_page):
        return KeysFirstPaginator(
            object_list,
            per_page,
            count_key=self.count_key,
            status_blind=self.status_blind,
            keep_ids=self.keep_ids,
        )
