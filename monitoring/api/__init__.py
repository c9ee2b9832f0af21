"""Monitoring's HTTP API: serializers (what the API reads and writes), views (filters, one service or selector
call each) and urls (mounted under ``/api/v1/`` by controlplane/urls.py)."""
