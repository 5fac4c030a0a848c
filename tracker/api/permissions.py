from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions


class StaffWritesWithModelPermissions(DjangoModelPermissions):
    """Anyone may read; writing takes a staff account with the model's Django permission."""

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff) and super().has_permission(
            request, view
        )


class StaffWithViewPermission(DjangoModelPermissions):
    """Staff only, with the model's view permission (sources, versions, alerts)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff) and super().has_permission(
            request, view
        )


class CanRecordStatus(BasePermission):
    """Recording a status change takes, as in the admin, adding status changes and changing
    the recommendation."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff) and request.user.has_perms(
            ["tracker.add_statuschange", "tracker.change_recommendation"]
        )


class CanReviewAlerts(BasePermission):
    """Marking an alert reviewed takes, as in the admin, changing change alerts."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff) and request.user.has_perm(
            "tracker.change_changealert"
        )
