"""The patterns a name or a hash follows wherever it arrives (the API's serializers, the services, the facets)."""

# A name that appears in a URL path (a registered model's, for one): a letter or digit, then letters, digits,
# dots, underscores and hyphens, 200 at most.
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"

# A SHA-256 as 64 hex characters, in either case (tools print both); it is stored and compared lowercase.
SHA256 = r"^[0-9a-fA-F]{64}$"
