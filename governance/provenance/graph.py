"""The lineage graph (DESIGN §4, Provenance): keeping its nodes and edges, walking it, and telling who and
what lies upstream of a model version.

- ``lineage_nodes_ensure`` / ``lineage_edges_ensure`` keep the node and edge tables that OpenLineage ingest
  (governance.provenance.ingest) and the registry (``lineage_link_model_version``) write.
- ``lineage_graph`` answers ``GET /api/v1/lineage/``: one recursive query over the edge table by integer node
  ids, inside the caller's projects, capped at ``GRAPH_NODE_CAP`` nodes.
- ``artifact_uris`` / ``artifact_datasets``: which URI an OpenLineage dataset names, and which datasets name a
  URI -- how a run's output is matched to a model version's artifact.
- ``lineage_agents`` (separation of duties) and ``prov_document`` (the PROV-JSON export) walk at run level:
  the runs that produced a version, or produced the data it was trained, validated or tested on, and so on
  upstream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat
from django.utils import timezone

from controlplane.exceptions import DomainError, NotFound
from controlplane.prepared import Prepared
from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.provenance.models import (
    Dataset,
    DatasetRole,
    DatasetVersion,
    LineageEvent,
    LineageGraphEdge,
    LineageNode,
    LineageRun,
    LineageRunDataset,
    ModelVersionDataset,
    model_versions,
)

if TYPE_CHECKING:  # annotations only: the registry sits above provenance
    from governance.registry.models import ModelVersion

GRAPH_NODE_CAP = 1000
MAX_DEPTH = 50
DIRECTIONS = ("upstream", "downstream", "both")
# The roles whose data a version is built from; ``reference`` data only feeds monitoring.
UPSTREAM_ROLES = (DatasetRole.TRAINED_ON, DatasetRole.VALIDATED_ON, DatasetRole.TESTED_ON)


def dataset_key(namespace: str, name: str) -> str:
    return f"dataset:{namespace}:{name}"


def job_key(namespace: str, name: str) -> str:
    return f"job:{namespace}:{name}"


def model_key(model_name: str, version: int) -> str:
    return f"model:{model_name}:{version}"


# Artifacts: the URI an OpenLineage dataset names ----------------------------------------------------------

_SCHEMED = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# OpenLineage names a local file ``file`` + ``/path`` (the naming spec's LocalFileSystem).
LOCAL_FILE_NAMESPACE = "file"


def _join(namespace: str, name: str) -> str:
    """``namespace`` and ``name`` with one ``/`` between them, as the naming spec builds a location from them
    (``s3://bucket`` + ``models/x`` and ``s3://bucket/`` + ``/models/x`` are both ``s3://bucket/models/x``)."""
    if namespace.endswith("/") and name.startswith("/"):
        return namespace + name[1:]
    if namespace.endswith("/") or name.startswith("/"):
        return namespace + name
    return f"{namespace}/{name}"


def artifact_uris(namespace: str, name: str) -> list[str]:
    """The URIs an OpenLineage dataset identity names: its ``name`` when that is a URI itself, and its namespace
    joined to its name when the namespace is a location (``s3://bucket`` + ``models/fraud/3/model.pkl`` is
    ``s3://bucket/models/fraud/3/model.pkl``; ``file`` + ``/srv/model.pkl`` is ``file:///srv/model.pkl``).
    A table (``postgres://host:5432`` + ``db.schema.table``) names one too; it just never equals an artifact."""
    uris = []
    if _SCHEMED.match(name):
        uris.append(name)
    if _SCHEMED.match(namespace):
        uris.append(_join(namespace, name))
    elif namespace == LOCAL_FILE_NAMESPACE and name.startswith("/"):
        uris.append(f"file://{name}")
    return list(dict.fromkeys(uris))


def _artifact_cuts(uri: str) -> tuple[list[tuple[str, str]], str | None]:
    """Every (namespace, name) that may name ``uri`` when cut at a ``/``, and the local file path it names."""
    pairs = []
    scheme_end = uri.find("://")
    local = None
    if scheme_end > 0:
        for index in (i for i, ch in enumerate(uri) if ch == "/" and i > scheme_end + 1):
            pairs += [(ns, name) for ns in (uri[:index], uri[: index + 1]) for name in (uri[index + 1 :], uri[index:])]
        if uri[:scheme_end].lower() == LOCAL_FILE_NAMESPACE:
            local = uri[scheme_end + 3 :]
    return pairs, local


def artifact_dataset_candidates(project: Project, uri: str) -> QuerySet[Dataset]:
    """The project's datasets that may name ``uri``: its name is the URI, or a cut of the URI at a ``/`` is
    its namespace and name (``_artifact_cuts``), looked up by the datasets' identity index. ``artifact_datasets``
    checks each candidate."""
    pairs, local = _artifact_cuts(uri)
    wanted = Q(name=uri)
    for namespace, name in pairs:
        wanted |= Q(namespace=namespace, name=name)
    if local is not None:
        wanted |= Q(namespace=LOCAL_FILE_NAMESPACE, name=local)
    return Dataset.objects.filter(project=project).filter(wanted)


def artifact_dataset_candidates_sql(project: Project, uri: str) -> tuple[str, list]:
    """``artifact_dataset_candidates`` as a PostgreSQL query (and its parameters) of the candidates' ids, for
    an ``EXISTS`` inside another statement, without building it through the ORM."""
    pairs, local = _artifact_cuts(uri)
    if local is not None:
        pairs.append((LOCAL_FILE_NAMESPACE, local))
    table = connection.ops.quote_name(Dataset._meta.db_table)
    sql = (
        f"SELECT id FROM {table} WHERE project_id = %s AND (name = %s OR (namespace, name) IN "
        "(SELECT * FROM unnest(%s::text[], %s::text[])))"
    )
    return sql, [project.pk, uri, [ns for ns, _ in pairs], [name for _, name in pairs]]


def artifact_datasets(project: Project, uri: str) -> list[Dataset]:
    """The project's datasets whose identity names ``uri`` (see ``artifact_uris``)."""
    candidates = artifact_dataset_candidates(project, uri)
    return [dataset for dataset in candidates if uri in artifact_uris(dataset.namespace, dataset.name)]


# Keeping the graph -----------------------------------------------------------------------------------------


_FIELD_OF_KIND = {"dataset": "dataset", "job": "job", "model_version": "model_version"}


def lineage_nodes_ensure(project: Project, wanted: dict[str, tuple[str, object]]) -> tuple[dict[str, int], bool]:
    """``wanted`` maps node keys to ``(kind, object)``; returns every key's node id and whether any node was
    created. Safe under concurrency: inserts ignore a conflicting row and the ids are read back. On PostgreSQL
    one statement inserts the missing nodes and reads the existing ones; a node that a concurrent transaction
    committed after that statement began is in neither half, and is read by a second statement."""
    if not wanted:
        return {}, False
    if connection.vendor == "postgresql":
        found, created = _nodes_upsert(project, wanted)
    else:
        found = dict(LineageNode.objects.filter(project=project, key__in=wanted).values_list("key", "id"))
        missing = [key for key in wanted if key not in found]
        if missing:
            LineageNode.objects.bulk_create(
                [
                    LineageNode(
                        project=project,
                        kind=wanted[key][0],
                        key=key,
                        **{_FIELD_OF_KIND[wanted[key][0]]: wanted[key][1]},
                    )
                    for key in missing
                ],
                ignore_conflicts=True,
            )
        created = bool(missing)
    missing = [key for key in wanted if key not in found]
    if missing:
        found.update(LineageNode.objects.filter(project=project, key__in=missing).values_list("key", "id"))
    return found, created


def _nodes_upsert(project: Project, wanted: dict[str, tuple[str, object]]) -> tuple[dict[str, int], bool]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` the new nodes' ids, and in the same statement the ids of
    the nodes that existed when it began. Keys in sorted order, so concurrent writers lock in one order."""
    table = LineageNode._meta.db_table
    keys = sorted(wanted)
    columns: dict[str, list] = {"dataset": [], "job": [], "model_version": []}
    for key in keys:
        kind, obj = wanted[key]
        for name, values in columns.items():
            values.append(obj.pk if _FIELD_OF_KIND[kind] == name else None)
    sql = (
        f"WITH wanted AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) "
        f"WITH ORDINALITY AS w(kind, key, dataset_id, job_id, model_version_id, n)), "
        f"inserted AS (INSERT INTO {table} (project_id, kind, key, dataset_id, job_id, model_version_id) "
        f"SELECT %s, kind, key, dataset_id, job_id, model_version_id FROM wanted ORDER BY n "
        f"ON CONFLICT (project_id, key) DO NOTHING RETURNING key, id) "
        f"SELECT key, id, true FROM inserted UNION ALL "
        f"SELECT key, id, false FROM {table} WHERE project_id = %s AND key = ANY(%s::text[])"
    )
    params = [[wanted[key][0] for key in keys], keys, columns["dataset"], columns["job"], columns["model_version"]]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, project.pk, project.pk, keys])
        rows = cursor.fetchall()
    return {key: node_id for key, node_id, _ in rows}, any(new for _, _, new in rows)


def lineage_edges_ensure(project: Project, pairs: Iterable[tuple[int, int]]) -> bool:
    """Add the edges ``src → dst`` that are missing; True if any was (on PostgreSQL, one statement)."""
    pairs = set(pairs)
    if not pairs:
        return False
    if connection.vendor == "postgresql":
        ordered = sorted(pairs)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {LineageGraphEdge._meta.db_table} (project_id, src_id, dst_id, created_at) "
                "SELECT %s, src, dst, %s FROM unnest(%s::bigint[], %s::bigint[]) AS e(src, dst) "
                "ON CONFLICT (src_id, dst_id) DO NOTHING RETURNING 1",
                [project.pk, timezone.now(), [src for src, _ in ordered], [dst for _, dst in ordered]],
            )
            return bool(cursor.fetchall())
    sources = {src for src, _ in pairs}
    existing = set(LineageGraphEdge.objects.filter(src_id__in=sources).values_list("src_id", "dst_id"))
    missing = pairs - existing
    if missing:
        LineageGraphEdge.objects.bulk_create(
            [LineageGraphEdge(project=project, src_id=src, dst_id=dst) for src, dst in sorted(missing)],
            ignore_conflicts=True,
        )
    return bool(missing)


def lineage_link_model_version(model_version: ModelVersion, *, datasets: Iterable[Dataset] | None = None) -> bool:
    """Put a registered version and the datasets it is linked to in the graph (dataset → model edges).
    Called by the registry whenever it records a version's dataset links; True if the graph changed.
    ``datasets``: the datasets of all the version's links, when the caller has them (a version it just
    created); otherwise they are read."""
    model = model_version.model
    project = model.project
    if datasets is None:
        links = ModelVersionDataset.objects.filter(model_version=model_version).select_related(
            "dataset_version__dataset"
        )
        datasets = {link.dataset_version.dataset for link in links}
    datasets = {dataset.pk: dataset for dataset in datasets}.values()
    wanted: dict[str, tuple[str, object]] = {
        model_key(model.name, model_version.version): ("model_version", model_version)
    }
    wanted.update({dataset_key(d.namespace, d.name): ("dataset", d) for d in datasets})
    ids, created = lineage_nodes_ensure(project, wanted)
    target = ids[model_key(model.name, model_version.version)]
    edges = {(ids[dataset_key(d.namespace, d.name)], target) for d in datasets}
    return lineage_edges_ensure(project, edges) or created


# Walking the graph -----------------------------------------------------------------------------------------

_WALK = {
    "upstream": "SELECT e.src_id, w.depth + 1 FROM {cte} w JOIN {edges} e ON e.dst_id = w.id WHERE w.depth < %s",
    "downstream": "SELECT e.dst_id, w.depth + 1 FROM {cte} w JOIN {edges} e ON e.src_id = w.id WHERE w.depth < %s",
}


def _walk_sql(direction: str) -> str:
    """One recursive query (UNION, so a node reached twice at the same depth is walked once). ``both`` is
    the ancestors and the descendants of the start node, as two recursive terms in the same statement."""
    edges = LineageGraphEdge._meta.db_table
    id_type = "BIGINT" if connection.vendor == "postgresql" else "INTEGER"
    parts, names = [], []
    for name in ("upstream", "downstream") if direction == "both" else (direction,):
        cte = f"walk_{name}"
        recursive = _WALK[name].format(cte=cte, edges=edges)
        parts.append(f"{cte}(id, depth) AS (SELECT CAST(%s AS {id_type}), 0 UNION {recursive})")
        names.append(f"SELECT id, depth FROM {cte}")
    return (
        f"WITH RECURSIVE {', '.join(parts)} "
        f"SELECT id, MIN(depth) AS depth FROM ({' UNION '.join(names)}) AS walked "
        "GROUP BY id ORDER BY MIN(depth), id LIMIT %s"
    )


def lineage_walk(start_id: int, *, depth: int, direction: str, cap: int = GRAPH_NODE_CAP) -> tuple[list[tuple], bool]:
    """``[(node id, distance)]`` nearest first, at most ``cap`` of them, and whether more were reachable."""
    params: list[int] = []
    for _ in ("upstream", "downstream") if direction == "both" else (direction,):
        params += [start_id, depth]
    with connection.cursor() as cursor:
        cursor.execute(_walk_sql(direction), [*params, cap + 1])
        rows = cursor.fetchall()
    return rows[:cap], len(rows) > cap


def _resolve(principal: Principal, node_id: str, project_slug: str | None) -> tuple[LineageNode | None, object]:
    """The node named ``node_id`` in the caller's projects, or (None, object) for a registered dataset or model
    version that has no lineage yet. Out of scope or unknown: 404; in several of the caller's projects: 400."""
    projects = Project.objects.filter(pk__in=principal.project_ids())
    if project_slug:
        projects = projects.filter(slug=project_slug)
    nodes = list(
        LineageNode.objects.filter(key=node_id, project__in=projects).select_related(
            "project", "dataset", "job", "model_version__model"
        )
    )
    if len(nodes) > 1:
        raise DomainError(
            f"'{node_id}' exists in several of your projects; name one with ?project=.",
            code="ambiguous_node",
            details=[{"field": "project", "choices": sorted(node.project.slug for node in nodes)}],
        )
    if nodes:
        return nodes[0], nodes[0]
    kind, _, rest = node_id.partition(":")
    found: list = []
    if kind == "dataset":
        found = list(
            Dataset.objects.filter(project__in=projects)
            .annotate(node_key=Concat(Value("dataset:"), "namespace", Value(":"), "name"))
            .filter(node_key=node_id)
            .select_related("project")[:2]
        )
    elif kind == "model":
        name, _, number = rest.rpartition(":")
        if number.isdigit():
            found = list(
                model_versions()
                .filter(model__project__in=projects, model__name=name, version=int(number))
                .select_related("model__project")[:2]
            )
    elif kind != "job":
        raise DomainError(
            "nodeId is dataset:{namespace}:{name}, job:{namespace}:{name} or model:{name}:{version}.",
            details=[{"field": "nodeId", "message": "unknown node kind"}],
        )
    if len(found) > 1:
        raise DomainError(
            f"'{node_id}' exists in several of your projects; name one with ?project=.", code="ambiguous_node"
        )
    if not found:
        raise NotFound(f"No lineage node '{node_id}' in your projects.")
    return None, found[0]


def _edge(src: str, dst: str) -> dict:
    return {"origin": src, "destination": dst}


def _version_data(version: DatasetVersion | None) -> dict | None:
    if version is None:
        return None
    return {"id": version.pk, "version": version.version, "kind": version.kind, "sha256": version.sha256}


def _run_data(run: LineageRun | None) -> dict | None:
    if run is None:
        return None
    return {
        "runId": str(run.run_id),
        "state": run.state,
        "agent": run.agent.username,
        "startedAt": run.started_at,
        "endedAt": run.ended_at,
        "parentRunId": str(run.parent_run_id) if run.parent_run_id else None,
    }


def _node_data(node_key: str, kind: str, obj, *, versions: dict, runs: dict) -> dict:
    if kind == "dataset":
        return {
            "id": node_key,
            "type": "DATASET",
            "data": {
                "id": obj.pk,
                "namespace": obj.namespace,
                "name": obj.name,
                "classification": obj.classification,
                "license": obj.license,
                "containsPii": obj.contains_pii,
                "currentVersion": _version_data(versions.get(obj.pk)),
            },
        }
    if kind == "job":
        return {
            "id": node_key,
            "type": "JOB",
            "data": {
                "namespace": obj.namespace,
                "name": obj.name,
                "facets": obj.facets,
                "latestRun": _run_data(runs.get(obj.pk)),
            },
        }
    return {
        "id": node_key,
        "type": "MODEL_VERSION",
        "data": {
            "model": obj.model.name,
            "version": obj.version,
            "status": obj.status,
            "artifactUri": obj.artifact_uri,
            "artifactSha256": obj.artifact_sha256,
        },
    }


def _among(ids: Iterable[int]):
    """For ``field__in``: on PostgreSQL one array parameter, not a thousand placeholders to parse."""
    ids = list(ids)
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", (ids,))
    return ids


def _latest(model, fk: str, ids: set[int], order: tuple[str, ...], *related) -> dict[int, object]:
    """The newest row of ``model`` per value of ``fk`` among ``ids``: a subquery picks it, one query loads it."""
    if not ids:
        return {}
    newest = model.objects.filter(**{fk: OuterRef(fk)}).order_by(*order).values("pk")[:1]
    rows = model.objects.filter(**{f"{fk}__in": _among(ids)}).filter(pk=Subquery(newest)).select_related(*related)
    return {getattr(row, f"{fk}_id"): row for row in rows}


def lineage_graph(
    *, principal: Principal, node_id: str, depth: int, direction: str, project_slug: str | None = None
) -> dict:
    """A Marquez-style graph around ``node_id``: ``{"graph": [{id, type, data, inEdges, outEdges}],
    "truncated"}``, nearest nodes first, at most ``GRAPH_NODE_CAP`` of them."""
    node, obj = _resolve(principal, node_id, project_slug)
    if node is None:  # registered, but nothing links it yet
        kind = "dataset" if isinstance(obj, Dataset) else "model_version"
        project = obj.project if kind == "dataset" else obj.model.project
        versions = _latest(DatasetVersion, "dataset", {obj.pk}, ("-created_at", "-id")) if kind == "dataset" else {}
        entry = _node_data(node_id, kind, obj, versions=versions, runs={})
        return {"project": project.slug, "nodeId": node_id, "graph": [{**entry, "inEdges": [], "outEdges": []}],
                "truncated": False}  # fmt: skip

    rows, truncated = lineage_walk(node.pk, depth=depth, direction=direction)
    ids = [row[0] for row in rows]
    nodes = {
        n.pk: n
        for n in LineageNode.objects.filter(pk__in=_among(ids)).select_related("dataset", "job", "model_version__model")
    }
    versions = _latest(
        DatasetVersion, "dataset", {n.dataset_id for n in nodes.values() if n.dataset_id}, ("-created_at", "-id")
    )
    runs = _latest(LineageRun, "job", {n.job_id for n in nodes.values() if n.job_id}, ("-created_at", "-id"), "agent")
    edges = list(
        LineageGraphEdge.objects.filter(src_id__in=_among(ids), dst_id__in=_among(ids)).values_list("src_id", "dst_id")
    )
    incoming: dict[int, list[dict]] = {}
    outgoing: dict[int, list[dict]] = {}
    for src, dst in sorted(edges):
        edge = _edge(nodes[src].key, nodes[dst].key)
        outgoing.setdefault(src, []).append(edge)
        incoming.setdefault(dst, []).append(edge)
    graph = []
    for node_pk in ids:
        n = nodes[node_pk]
        target = {"dataset": n.dataset, "job": n.job, "model_version": n.model_version}[n.kind]
        entry = _node_data(n.key, n.kind, target, versions=versions, runs=runs)
        entry["inEdges"] = incoming.get(node_pk, [])
        entry["outEdges"] = outgoing.get(node_pk, [])
        graph.append(entry)
    return {"project": node.project.slug, "nodeId": node_id, "graph": graph, "truncated": truncated}


# Upstream of a model version, run by run -------------------------------------------------------------------


@dataclass
class Upstream:
    """What lies upstream of a model version: the runs, what each read and wrote, and the registry links."""

    model_version: ModelVersion
    links: list[ModelVersionDataset] = field(default_factory=list)
    runs: dict[int, LineageRun] = field(default_factory=dict)
    io: list[LineageRunDataset] = field(default_factory=list)


def _produces(row: LineageRunDataset, wanted: dict[int, set[int | None]]) -> bool:
    """Did this output row write what is wanted? An unknown version on either side counts as a match: for
    separation of duties, naming a producer too many is safer than missing one."""
    versions = wanted.get(row.dataset_id)
    if versions is None:
        return False
    return row.dataset_version_id is None or None in versions or row.dataset_version_id in versions


def lineage_upstream(model_version: ModelVersion) -> Upstream:
    """Walk back from a version: the runs linked to it (by the ``tollgate_modelVersion`` facet or by their output
    artifact, ``LineageRun.model_version_link``), the data it was trained, validated or tested on, the runs that
    wrote that data, what those runs read, and so on."""
    return lineage_upstream_many([model_version])[model_version.pk]


# The walk's first reads when it starts from one version on one dataset (the gates' dry run), compiled once per
# connection (controlplane.prepared); several use the ``__in`` queries beside them, which answer the same rows.
_runs_of_version = Prepared(lambda version: LineageRun.objects.filter(model_version_id=version).order_by(), version=0)
_writers_of_dataset = Prepared(
    lambda dataset: LineageRunDataset.objects.filter(
        dataset_id=dataset, direction=LineageRunDataset.Direction.OUTPUT
    ).order_by(),
    dataset=0,
)


def lineage_upstream_many(
    model_versions: Iterable[ModelVersion], *, links: Iterable[ModelVersionDataset] | None = None
) -> dict[int, Upstream]:
    """``lineage_upstream`` of several versions, by version id, walked side by side: each step of the walk is
    one query for all of them, so the number of queries grows with the depth of the lineage, not with the
    number of versions (the officer's queue evaluates every request's gates at once). ``links``: every dataset
    link of these versions (any role, with its dataset version), where the caller has them already."""
    ups = {version.pk: Upstream(model_version=version) for version in model_versions}
    if links is None:
        links = ModelVersionDataset.objects.filter(model_version__in=list(ups), role__in=UPSTREAM_ROLES).select_related(
            "dataset_version__dataset", "created_by"
        )
    else:
        links = [link for link in links if link.role in UPSTREAM_ROLES]
    wanted: dict[int, dict[int, set[int | None]]] = {pk: {} for pk in ups}
    for link in links:
        ups[link.model_version_id].links.append(link)
        wanted[link.model_version_id].setdefault(link.dataset_version.dataset_id, set()).add(link.dataset_version_id)
    new_runs: dict[int, dict[int, LineageRun]] = {pk: {} for pk in ups}
    # Orders: the last query's sets that of ``runs``, each step's rows that of ``io``; the other reads need none.
    if len(ups) == 1:
        first = _runs_of_version(version=next(iter(ups)))
    else:
        first = LineageRun.objects.filter(model_version__in=list(ups)).order_by()
    for run in first:
        new_runs[run.model_version_id][run.pk] = run
    seen: dict[int, dict[int, set[int | None]]] = {pk: {} for pk in ups}
    for _ in range(MAX_DEPTH):
        stepping = {run_id for runs in new_runs.values() for run_id in runs}
        rows = list(
            LineageRunDataset.objects.filter(run_id__in=stepping).select_related("dataset", "dataset_version")
        ) if stepping else []  # fmt: skip
        fresh: dict[int, dict[int, set[int | None]]] = {}
        for pk, upstream in ups.items():
            if new_runs[pk]:
                upstream.runs.update(new_runs[pk])
                mine = [row for row in rows if row.run_id in new_runs[pk]]
                upstream.io.extend(mine)
                for row in mine:
                    if row.direction == LineageRunDataset.Direction.INPUT:
                        wanted[pk].setdefault(row.dataset_id, set()).add(row.dataset_version_id)
            unseen = {d: v - seen[pk].get(d, set()) for d, v in wanted[pk].items() if v - seen[pk].get(d, set())}
            for d, v in unseen.items():
                seen[pk].setdefault(d, set()).update(v)
            wanted[pk] = {}
            if unseen:
                fresh[pk] = unseen
        if not fresh:
            break
        datasets = {d for unseen in fresh.values() for d in unseen}
        if len(datasets) == 1:
            outputs = _writers_of_dataset(dataset=next(iter(datasets)))
        else:
            outputs = list(
                LineageRunDataset.objects.filter(
                    dataset_id__in=datasets, direction=LineageRunDataset.Direction.OUTPUT
                ).order_by()
            )
        producing = {
            pk: {row.run_id for row in outputs if row.run_id not in ups[pk].runs and _produces(row, unseen)}
            for pk, unseen in fresh.items()
        }
        wanted_runs = {run_id for run_ids in producing.values() for run_id in run_ids}
        found = {
            run.pk: run
            for run in LineageRun.objects.filter(pk__in=wanted_runs).select_related("job", "agent").order_by()
        }
        new_runs = {pk: {} for pk in ups}
        for pk, run_ids in producing.items():
            new_runs[pk] = {run_id: found[run_id] for run_id in run_ids if run_id in found}
    every = {run_id for upstream in ups.values() for run_id in upstream.runs}
    runs = list(LineageRun.objects.filter(pk__in=every).select_related("job", "agent")) if every else []
    for upstream in ups.values():
        upstream.runs = {run.pk: run for run in runs if run.pk in upstream.runs}
    return ups


def lineage_agents(model_version: ModelVersion) -> set[int]:
    """User ids of the agents of every run upstream of ``model_version`` (see ``lineage_upstream``): the
    principal whose key reported each run, and anyone else whose key reported an event of it. Separation of
    duties refuses their approval of this version."""
    return lineage_agents_many([model_version])[model_version.pk]


def lineage_agents_many(
    model_versions: Iterable[ModelVersion], *, links: Iterable[ModelVersionDataset] | None = None
) -> dict[int, set[int]]:
    """``lineage_agents`` of several versions, by version id, in as many queries as for one (``links``: as for
    ``lineage_upstream_many``)."""
    versions = list(model_versions)
    ups = lineage_upstream_many(versions, links=links)
    agents = {pk: {run.agent_id for run in upstream.runs.values()} for pk, upstream in ups.items()}
    run_ids = {run.run_id for upstream in ups.values() for run in upstream.runs.values()}
    if run_ids:
        reporters: dict[tuple, set[int]] = {}
        events = LineageEvent.objects.filter(
            project_id__in={version.model.project_id for version in versions}, run_id__in=run_ids
        ).values_list("project_id", "run_id", "received_by_id")
        for project_id, run_id, received_by in events:
            reporters.setdefault((project_id, run_id), set()).add(received_by)
        for version in versions:
            for run in ups[version.pk].runs.values():
                agents[version.pk] |= reporters.get((version.model.project_id, run.run_id), set())
    return agents


# PROV-JSON -------------------------------------------------------------------------------------------------


def _qname(value: str) -> dict:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def _attrs(**values) -> dict:
    return {key.replace("__", ":"): value for key, value in values.items() if value not in (None, "")}


def prov_document(model_version: ModelVersion, *, base_uri: str) -> dict:
    """A W3C PROV-JSON document of a version's upstream lineage: dataset versions and the model version are
    entities, runs are activities, principals are agents. Ids live under ``base_uri`` (the project's API)."""
    upstream = lineage_upstream(model_version)
    model = model_version.model
    doc: dict = {
        "prefix": {"tollgate": base_uri, "xsd": "http://www.w3.org/2001/XMLSchema#"},
        "entity": {},
        "activity": {},
        "agent": {},
        "used": {},
        "wasGeneratedBy": {},
        "wasAssociatedWith": {},
        "wasAttributedTo": {},
        "wasDerivedFrom": {},
    }
    counters: dict[str, int] = {}

    def relation(kind: str, body: dict) -> None:
        counters[kind] = counters.get(kind, 0) + 1
        doc[kind][f"_:{kind}{counters[kind]}"] = body

    def agent(user) -> str:
        ident = f"tollgate:users/{user.username}"
        doc["agent"][ident] = _attrs(
            prov__type=_qname("prov:SoftwareAgent" if user.is_service_account else "prov:Person"),
            tollgate__username=user.username,
        )
        return ident

    def entity(dataset: Dataset, version: DatasetVersion | None) -> str:
        if version is None:
            ident = f"tollgate:datasets/{dataset.pk}"
            attrs = _attrs(prov__type=_qname("tollgate:Dataset"))
        else:
            ident = f"tollgate:datasets/{dataset.pk}/versions/{version.pk}"
            attrs = _attrs(
                prov__type=_qname("tollgate:DatasetVersion"),
                tollgate__version=version.version,
                tollgate__kind=version.kind,
                tollgate__sha256=version.sha256,
                tollgate__uri=version.uri,
            )
        doc["entity"][ident] = {
            **_attrs(
                prov__label=f"{dataset.namespace}/{dataset.name}" + (f"@{version.version}" if version else ""),
                tollgate__namespace=dataset.namespace,
                tollgate__name=dataset.name,
                tollgate__license=dataset.license,
                tollgate__classification=dataset.classification,
            ),
            "tollgate:containsPii": dataset.contains_pii,
            **attrs,
        }
        return ident

    version_id = f"tollgate:models/{model.name}/versions/{model_version.version}"
    doc["entity"][version_id] = _attrs(
        prov__type=_qname("tollgate:ModelVersion"),
        prov__label=f"{model.name} v{model_version.version}",
        tollgate__artifactUri=model_version.artifact_uri,
        tollgate__artifactSha256=model_version.artifact_sha256,
        tollgate__status=model_version.status,
    )
    relation("wasAttributedTo", {"prov:entity": version_id, "prov:agent": agent(model_version.created_by)})
    for link in upstream.links:
        used = entity(link.dataset_version.dataset, link.dataset_version)
        relation(
            "wasDerivedFrom",
            {"prov:generatedEntity": version_id, "prov:usedEntity": used, "tollgate:role": link.role},
        )

    by_run: dict[int, dict[str, list[str]]] = {}
    for row in upstream.io:
        ident = entity(row.dataset, row.dataset_version)
        by_run.setdefault(row.run_id, {"input": [], "output": []})[row.direction].append(ident)
    for run in upstream.runs.values():
        activity = f"tollgate:lineage/runs/{run.run_id}"
        doc["activity"][activity] = _attrs(
            prov__startTime=run.started_at.isoformat() if run.started_at else None,
            prov__endTime=run.ended_at.isoformat() if run.ended_at else None,
            prov__type=_qname("tollgate:Run"),
            prov__label=f"{run.job.namespace}/{run.job.name}",
            tollgate__runId=str(run.run_id),
            tollgate__jobNamespace=run.job.namespace,
            tollgate__jobName=run.job.name,
            tollgate__state=run.state,
        )
        relation("wasAssociatedWith", {"prov:activity": activity, "prov:agent": agent(run.agent)})
        inputs = by_run.get(run.pk, {}).get("input", [])
        outputs = by_run.get(run.pk, {}).get("output", [])
        if run.model_version_id == model_version.pk:
            outputs = [*outputs, version_id]
        for used in inputs:
            relation("used", {"prov:activity": activity, "prov:entity": used})
        for generated in outputs:
            relation("wasGeneratedBy", {"prov:entity": generated, "prov:activity": activity})
            for used in inputs:
                relation(
                    "wasDerivedFrom",
                    {"prov:generatedEntity": generated, "prov:usedEntity": used, "prov:activity": activity},
                )
    return {kind: body for kind, body in doc.items() if body}


__all__ = [
    "GRAPH_NODE_CAP",
    "artifact_dataset_candidates",
    "artifact_dataset_candidates_sql",
    "artifact_datasets",
    "artifact_uris",
    "dataset_key",
    "job_key",
    "lineage_agents",
    "lineage_agents_many",
    "lineage_edges_ensure",
    "lineage_graph",
    "lineage_link_model_version",
    "lineage_nodes_ensure",
    "lineage_upstream",
    "lineage_upstream_many",
    "lineage_walk",
    "model_key",
    "prov_document",
]
