"""Provenance: datasets and their immutable versions (hashes, datasheets, stored files and URI checks), the
links from dataset versions to model versions, OpenLineage ingest (``ingest``), and the lineage graph with its
PROV export (``graph``). It refers to model versions by their model label (``governance.ModelVersion``): the
registry sits above it and cites data when it registers a version."""
