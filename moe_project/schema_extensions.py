"""drf-spectacular extensions: document the stateless JWT scheme the hot endpoints use."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class StatelessJWTScheme(SimpleJWTScheme):
    target_class = "moe_project.authentication.CachedStatelessJWTAuthentication"
    name = "jwtStatelessAuth"
    priority = 1  # before SimpleJWTScheme, which also matches subclasses
