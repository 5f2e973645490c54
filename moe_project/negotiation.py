"""Content negotiation that skips the work when there is nothing to choose.

DRF's default negotiation parses the Accept header against every renderer on each request
(~30 us). Our API views render JSON only, so with a single renderer the answer is known; views
with several (the OpenAPI schema: YAML or JSON) still negotiate as usual.
"""

from rest_framework.negotiation import DefaultContentNegotiation


class SingleRendererNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
