from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as tracker_urlpatterns


def trivial(request):
    """The ceiling: a Django JSON view that touches nothing."""
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/trivial/", trivial), *tracker_urlpatterns]
