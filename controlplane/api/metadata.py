from rest_framework.metadata import SimpleMetadata


class Metadata(SimpleMetadata):
    """OPTIONS answers what a view accepts and renders; the fields of each action are in the OpenAPI schema
    (``/api/schema/``), not introspected here (several views take no serializer)."""

    def determine_metadata(self, request, view):
        metadata = super().determine_metadata(request, view)
        metadata.pop("actions", None)
        return metadata

    def determine_actions(self, request, view):
        return {}
