"""Content-Security-Policy: what a browser may load and run on each kind of page.

Every response gets the policy of the page that answered it, chosen here in one place by the
view's URL name (`policy_for`), so that reading this module tells the whole story:

- public pages, feeds, badges and error pages run no JavaScript at all;
- kept copies of sources, text taken from pages we do not control, get the strictest policy
  and a sandbox;
- the admin, the API docs (Swagger UI) and the browsable API run their own script files,
  never inline script.
"""

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware
from django.conf import settings

# Public pages: our stylesheet, forms that post to us, and nothing else.
PUBLIC = {
    "default-src": [NONE],
    "script-src": [NONE],
    "style-src": [SELF],
    "img-src": [SELF],
    "form-action": [SELF],
    "base-uri": [NONE],
    "frame-ancestors": [NONE],
}

# Kept copies: as the public pages, and sandboxed (an opaque origin: no cookies, no storage,
# no script even if a policy were bypassed). Forms stay allowed for the search and language
# forms in the page's header.
KEPT_COPY = {**PUBLIC, "sandbox": ["allow-forms"]}

# Django's admin: its own script files. Inline styles are allowed: the audit trail's history
# page (django-auditlog) carries a <style> block, and the digest preview shows the mail's
# inline styles in a sandboxed frame.
ADMIN = {
    "default-src": [NONE],
    "script-src": [SELF],
    "style-src": [SELF, UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "font-src": [SELF],
    "connect-src": [SELF],
    "form-action": [SELF],
    "base-uri": [NONE],
    "frame-ancestors": [NONE],
}

# Swagger UI (drf-spectacular's split view: its start-up script is a file too). It fetches
# the schema and, with "Try it out", the API; its stylesheet draws icons as data: images.
API_DOCS = {
    "default-src": [NONE],
    "script-src": [SELF],
    "style-src": [SELF],
    "img-src": [SELF, "data:"],
    "connect-src": [SELF],
    "form-action": [SELF],
    "base-uri": [NONE],
    "frame-ancestors": [NONE],
}

# DRF's browsable API needs what the admin does: script files, and inline styles (style
# attributes and the syntax highlighting's <style> block in its templates).
BROWSABLE_API = ADMIN


def policy_for(request):
    """Return the directives for the response to `request`: by the view that answered it,
    the public pages' when no view did (a 404 for an unknown path)."""
    match = request.resolver_match
    if match is None:
        return with_reporting(PUBLIC)
    if match.view_name == "public:source_version":
        policy = KEPT_COPY
    elif match.view_name == "api-docs":
        policy = API_DOCS
    elif match.namespaces[:1] == ["admin"]:
        policy = ADMIN
    elif match.namespaces[:1] == ["api"]:
        policy = BROWSABLE_API
    else:
        policy = PUBLIC
    return with_reporting(policy)


def with_reporting(policy):
    """Add the operator's report address (TRACKER_CSP_REPORT_URI), if any."""
    if not settings.TRACKER_CSP_REPORT_URI:
        return policy
    return {**policy, "report-uri": [settings.TRACKER_CSP_REPORT_URI]}


class ContentPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policy chosen per page by `policy_for` (a view may
    still set its own with django-csp's decorators)."""

    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and parts.config is None:
            parts.config = policy_for(request)
        return parts
