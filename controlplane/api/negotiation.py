"""Content negotiation that answers a bad ``?format=`` with a 400 naming the formats (DRF's own answers a 404
with an empty message), and a bad ``Accept`` header with a 406 naming the media types."""

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

from controlplane.exceptions import DomainError


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        asked = request.query_params.get(api_settings.URL_FORMAT_OVERRIDE) if not format_suffix else None
        formats = list(dict.fromkeys(renderer.format for renderer in renderers))
        if asked and asked not in formats:
            message = f"There is no format {asked[:50]!r} here: ?format= takes {_one_of(formats)}."
            raise DomainError(message, details=[{"field": "format", "message": message, "code": "invalid_choice"}])
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            media_types = list(dict.fromkeys(renderer.media_type for renderer in renderers))
            raise exceptions.NotAcceptable(
                f"The Accept header names no type this endpoint answers with: {_one_of(media_types)}.",
                available_renderers=renderers,
            ) from None
