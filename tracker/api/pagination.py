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
    the same count.

    Only for lists without annotations over other rows (a window over the page alone would
    differ) and not DISTINCT (whose subquery would carry the ordering columns)."""

    def __init__(self, object_list, per_page, *, count_key=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.count_key = count_key

    @cached_property
    def count(self):
        count_rows = self.object_list.count
        return count_rows() if self.count_key is None else cached(self.count_key, count_rows)

    def page(self, number):
        page = super().page(number)
        rows = page.object_list
        if isinstance(rows, QuerySet) and not rows.query.distinct:
            page.object_list = self.object_list.filter(pk__in=rows.values("pk"))
        return page


class KeysFirstPagination(Pagination):
    """Pages from KeysFirstPaginator; the view sets `count_key` (what the count depends on)."""

    count_key = None

    def django_paginator_class(self, object_list, per_page):
        return KeysFirstPaginator(object_list, per_page, count_key=self.count_key)
