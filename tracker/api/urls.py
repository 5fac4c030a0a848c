from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("documents", views.DocumentViewSet, basename="document")
router.register("agencies", views.AgencyViewSet, basename="agency")
router.register("recommendations", views.RecommendationViewSet, basename="recommendation")
router.register("status-changes", views.StatusChangeViewSet, basename="statuschange")
router.register("evidence", views.EvidenceViewSet, basename="evidence")
router.register("sources", views.SourceViewSet, basename="source")
router.register("source-versions", views.SourceVersionViewSet, basename="sourceversion")
router.register("alerts", views.ChangeAlertViewSet, basename="changealert")

urlpatterns = [
    path("progress/", views.ProgressView.as_view(), name="progress"),
    path(
        "analytics/implementation-curve/",
        views.ImplementationCurveView.as_view(),
        name="implementation-curve",
    ),
    *router.urls,
]
