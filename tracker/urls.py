"""The public pages (namespace "public"): no login, published recommendations only."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("documents/<str:code>/", views.document, name="document"),
    path(
        "documents/<str:document>/recommendations/<str:code>/",
        views.recommendation,
        name="recommendation",
    ),
    path("agencies/<slug:slug>/", views.agency, name="agency"),
    path("search/", views.search, name="search"),
    path("sources/versions/<int:pk>/", views.source_version, name="source_version"),
    path("language/", views.set_language, name="set_language"),
]
