"""The console's lineage explorer (issue 18): the graph around a dataset, a dataset version, a run or a model
version, upstream and downstream, with depth control -- ``governance.provenance.graph.lineage_graph``, the
walk ``GET /api/v1/lineage/`` answers with, inside the page's project.

The graph's nodes are datasets, jobs and model versions: a dataset version is drawn as its dataset (with the
version named), a run as its job (with the run named). Each node links to its page -- a model version to the
console's version page -- and re-centres the explorer on it. A graph cut at the node cap says so.
"""

from __future__ import annotations

import uuid

from controlplane.exceptions import DomainError, NotFound
from governance.console import queries
from governance.console.views import _page, _principal, console_page
from governance.provenance import graph as lineage
from governance.provenance.selectors import dataset_list, dataset_version_list, lineage_run_get
from governance.registry.selectors import model_list, model_version_list

DEFAULT_DEPTH = 5
DIRECTIONS = {"upstream": "Upstream (what it was made from)", "downstream": "Downstream (what was made from it)",
              "both": "Both"}  # fmt: skip


def _start(principal, project, node: str) -> tuple[str, str]:
    """The graph's node key for ``node`` and a note on how it was read: a dataset version
    (``dataset-version:<id>``) is drawn as its dataset, a run (``run:<run id>``) as its job."""
    kind, _, rest = node.partition(":")
    if kind == "dataset-version" and rest.isdigit():
        for dataset in dataset_list(principal=principal, project=project):
            version = dataset_version_list(principal=principal, dataset=dataset).filter(pk=int(rest)).first()
            if version is not None:
                key = lineage.dataset_key(dataset.namespace, dataset.name)
                return key, f"Dataset version {version.version} of {dataset.name}: the graph is drawn per dataset."
        raise NotFound(f"No dataset version {rest} in this project.")
    if kind == "run":
        try:
            run_id = uuid.UUID(rest)
        except ValueError:
            raise NotFound(f"No run '{rest}' in this project.") from None
        run = lineage_run_get(principal=principal, project=project, run_id=run_id)
        key = lineage.job_key(run.job.namespace, run.job.name)
        return key, f"Run {run.run_id} of job {run.job.name}: the graph is drawn per job."
    return node, ""


def _levels(graph: list[dict], start: str, direction: str) -> dict[str, int]:
    """Each node's signed distance from the start: negative upstream, positive downstream (breadth first over
    the edges the graph returned)."""
    by_id = {entry["id"]: entry for entry in graph}
    levels = {start: 0}
    walks = []
    if direction in ("upstream", "both"):
        walks.append((-1, "inEdges", "origin"))
    if direction in ("downstream", "both"):
        walks.append((1, "outEdges", "destination"))
    for step, edges, end in walks:
        frontier, seen = [start], {start}
        distance = 0
        while frontier:
            distance += step
            following = []
            for key in frontier:
                for edge in by_id.get(key, {}).get(edges, []):
                    other = edge[end]
                    if other in by_id and other not in seen:
                        seen.add(other)
                        levels.setdefault(other, distance)
                        following.append(other)
            frontier = following
    return levels


def _columns(graph: list[dict], levels: dict[str, int]) -> list[dict]:
    columns: dict[int, list] = {}
    for entry in graph:
        if entry["id"] in levels:
            columns.setdefault(levels[entry["id"]], []).append(entry)
    labels = {0: "start"}
    shaped = []
    for level in sorted(columns):
        label = labels.get(level) or (f"{-level} upstream" if level < 0 else f"{level} downstream")
        nodes = sorted(columns[level], key=lambda e: (e["type"], e["id"]))
        shaped.append({"level": level, "label": label, "nodes": nodes})
    return shaped


def _starting_points(principal, project) -> dict:
    versions = []
    for model in model_list(principal=principal, project=project):
        for version in model_version_list(principal=principal, model=model).order_by("-version"):
            versions.append((lineage.model_key(model.name, version.version), f"{model.name} v{version.version}"))
    datasets = [
        (lineage.dataset_key(d.namespace, d.name), f"{d.name} ({d.namespace})")
        for d in dataset_list(principal=principal, project=project)
    ]
    return {"versions": versions, "datasets": datasets}


@console_page
def lineage_page(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    node = request.GET.get("node", "").strip()
    direction = request.GET.get("direction", "upstream")
    if direction not in DIRECTIONS:
        direction = "upstream"
    depth_text = request.GET.get("depth", "")
    depth = int(depth_text) if depth_text.isdigit() else DEFAULT_DEPTH
    depth = max(1, min(depth, lineage.MAX_DEPTH))
    context = {
        "node": node, "direction": direction, "depth": depth, "directions": DIRECTIONS,
        "max_depth": lineage.MAX_DEPTH, "cap": lineage.GRAPH_NODE_CAP, "starting": _starting_points(principal, project),
        "error": "", "columns": [], "truncated": False, "note": "", "start": "",
    }  # fmt: skip
    status = 200
    if node:
        try:
            start, note = _start(principal, project, node)
            result = lineage.lineage_graph(
                principal=principal, node_id=start, depth=depth, direction=direction, project_slug=project.slug
            )
        except NotFound as missing:
            context["error"], status = missing.message, 404
        except DomainError as refused:
            context["error"], status = refused.message, 400
        else:
            levels = _levels(result["graph"], start, direction)
            context.update(
                start=start, note=note, truncated=result["truncated"], columns=_columns(result["graph"], levels),
                count=len(result["graph"]), lonely=len(result["graph"]) == 1,
            )  # fmt: skip
    return _page(request, "console/lineage.html", context, project=project, status=status)
