"""The accounts API, and the base views (``base``) every concern's views stand on."""
