"""The public pages (namespace "public"): no login, published recommendations only."""

from django.urls import path

from . import badges, feeds, views

urlpatterns = [
    path("", views.home, name="home"),
    path("documents/<str:code>/", views.document, name="document"),
    path(
        "documents/<str:document>/recommendations/<str:code>/",
        views.recommendation,
        name="recommendation",
    ),
    path("agencies/", views.agencies, name="agencies"),
    path("agencies/<slug:slug>/", views.agency, name="agency"),
    path("search/", views.search, name="search"),
    path("reports/progress/", views.progress_report, name="report"),
    path("reports/progress.csv", views.progress_report, {"fmt": "csv"}, name="report_csv"),
    path("reports/progress.xlsx", views.progress_report, {"fmt": "xlsx"}, name="report_xlsx"),
    path("reports/progress.pdf", views.progress_report, {"fmt": "pdf"}, name="report_pdf"),
    path("moved/", views.moved, name="moved"),
    path("sources/versions/<int:pk>/", views.source_version, name="source_version"),
    path("language/", views.set_language, name="set_language"),
    # Atom feeds of updates and embeddable SVG badges (tracker/feeds.py, tracker/badges.py).
    path("feeds/updates/", feeds.updates_feed, name="feed_updates"),
    path("updates/", feeds.updates_page, name="updates"),
    path("documents/<str:code>/updates/", feeds.updates_page, name="updates_document"),
    path("agencies/<slug:slug>/updates/", feeds.updates_page, name="updates_agency"),
    path("methodology/", views.methodology, name="methodology"),
    path("documents/<str:code>/feed/", feeds.document_updates_feed, name="feed_document"),
    path("agencies/<slug:slug>/feed/", feeds.agency_updates_feed, name="feed_agency"),
    path("badges/documents/<str:code>.svg", badges.document_badge, name="badge_document"),
    path(
        "badges/documents/<str:document>/recommendations/<str:code>.svg",
        badges.recommendation_badge,
        name="badge_recommendation",
    ),
    # Subscriptions to digests
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/sent/", views.subscribe_sent, name="subscribe_sent"),
    path("subscribe/confirm/<str:token>/", views.confirm, name="confirm"),
    path("subscription/<str:token>/", views.preferences, name="preferences"),
    path("subscription/<str:token>/unsubscribe/", views.unsubscribe, name="unsubscribe"),
]
