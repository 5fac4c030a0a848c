from django.core.paginator import Paginator
from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Pages of `{count, next, previous, results}`; `page_size` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class KeysFirstPaginator(Paginator):
    """Find a page's ids first, then read those rows: the database skips the rows before the
    page (OFFSET) in an index instead of reading each of them whole.

    Only for lists without annotations over other rows (a window over the page alone would
    differ) and not DISTINCT (whose subquery would carry the ordering columns)."""

    def page(self, number):
        page = super().page(number)
        rows = page.object_list
        if isinstance(rows, QuerySet) and not rows.query.distinct:
            page.object_list = self.object_list.filter(pk__in=rows.values("pk"))
        return page


class KeysFirstPagination(Pagination):
    django_paginator_class = KeysFirstPaginator
