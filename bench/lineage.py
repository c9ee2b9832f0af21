"""Lineage graph queries on a large graph (DESIGN §10; target: depth-10 queries under 100 ms).

Builds on a throwaway PostgreSQL database a layered pipeline graph -- layers alternate datasets and jobs,
100 layers of 1,000 nodes (100k nodes), each node fed by 3 nodes of the layer before (fan-in 3, ~300k
edges) -- then times, from start nodes spread over the graph, the recursive walk alone (one SQL statement)
and the whole ``GET /api/v1/lineage/`` selector (walk, nodes with their data, edges); medians and p95.

    .venv/bin/python bench/lineage.py [--layers 100] [--width 1000] [--repeat 30]
"""

import argparse
import statistics
import time

from _common import configure

DATABASE = "tollgate_bench_lineage"
OFFSETS = (0, 1, 37)  # the parents of node j are j, j+1 and j+37 of the layer before (mod width)


def build(layers: int, width: int):
    from django.db import connection

    from governance.accounts.access import Principal
    from governance.accounts.models import Role, User
    from governance.accounts.services import project_create, role_grant
    from governance.provenance.models import Dataset, LineageJob, LineageNode

    staff = User.objects.create_user("staff", is_staff=True)
    admin = User.objects.create_user("admin")
    auditor = User.objects.create_user("auditor")
    project = project_create(actor=Principal(staff), slug="bench", name="Bench", admin=admin)
    role_grant(actor=Principal(admin), project=project, principal=auditor, role=Role.AUDITOR)

    datasets = Dataset.objects.bulk_create(
        [
            Dataset(project=project, namespace="bench", name=f"d{k}-{j}")
            for k in range(0, layers, 2)
            for j in range(width)
        ],
        batch_size=5000,
    )
    jobs = LineageJob.objects.bulk_create(
        [
            LineageJob(project=project, namespace="bench", name=f"j{k}-{j}")
            for k in range(1, layers, 2)
            for j in range(width)
        ],
        batch_size=5000,
    )
    nodes = [LineageNode(project=project, kind="dataset", key=f"dataset:bench:{d.name}", dataset=d) for d in datasets]
    nodes += [LineageNode(project=project, kind="job", key=f"job:bench:{j.name}", job=j) for j in jobs]
    LineageNode.objects.bulk_create(nodes, batch_size=5000)

    def key(layer: str, position: str) -> str:
        prefix = f"CASE WHEN ({layer}) %% 2 = 0 THEN 'dataset:bench:d' ELSE 'job:bench:j' END"
        return f"{prefix} || ({layer}) || '-' || ({position})"

    offsets = ", ".join(f"({o})" for o in OFFSETS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO governance_lineagegraphedge (project_id, src_id, dst_id, created_at)
            SELECT %s, parent.id, child.id, now()
            FROM generate_series(1, %s) AS k
            CROSS JOIN generate_series(0, %s) AS j
            CROSS JOIN (VALUES {offsets}) AS o(off)
            JOIN governance_lineagenode child ON child.project_id = %s AND child.key = {key("k", "j")}
            JOIN governance_lineagenode parent ON parent.project_id = %s
                AND parent.key = {key("k - 1", f"((j + o.off) %% {width})")}
            """,
            [project.pk, layers - 1, width - 1, project.pk, project.pk],
        )
        cursor.execute("ANALYZE governance_lineagenode; ANALYZE governance_lineagegraphedge")
    return project, auditor


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30, help="start nodes per case (default 30)")
    args = parser.parse_args()

    configure(DATABASE, create=True)
    from django.db import connection

    from governance.accounts.access import Principal
    from governance.provenance.graph import lineage_graph, lineage_walk
    from governance.provenance.models import LineageGraphEdge, LineageNode

    started = time.perf_counter()
    project, auditor = build(args.layers, args.width)
    built = time.perf_counter() - started
    nodes = LineageNode.objects.filter(project=project).count()
    edges = LineageGraphEdge.objects.filter(project=project).count()
    server = connection.cursor().connection.info.server_version
    print(f"PostgreSQL {server}; graph: {nodes:,} nodes, {edges:,} edges, built in {built:.0f} s")

    def kind(layer):
        return ("dataset:bench:d" if layer % 2 == 0 else "job:bench:j") + f"{layer}-"

    last, middle = args.layers - 1, args.layers // 2
    cases = [
        ("upstream", 10, last),
        ("downstream", 10, 0),
        ("both", 10, middle),
        ("upstream", 20, last),
        ("upstream", 50, last),
    ]
    print(f"{'direction':<11}{'depth':>6}{'nodes':>7}{'edges':>7}{'trunc':>7}{'walk p50':>10}{'walk p95':>10}"
          f"{'API p50':>10}{'API p95':>10}")  # fmt: skip
    principal = Principal(auditor)
    for direction, depth, layer in cases:
        starts = [f"{kind(layer)}{(i * 7919) % args.width}" for i in range(args.repeat)]
        ids = dict(LineageNode.objects.filter(project=project, key__in=starts).values_list("key", "id"))
        walk_ms, api_ms, sizes = [], [], []
        for start in starts:
            began = time.perf_counter()
            lineage_walk(ids[start], depth=depth, direction=direction)
            walk_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            graph = lineage_graph(principal=principal, node_id=start, depth=depth, direction=direction)
            api_ms.append((time.perf_counter() - began) * 1000)
            edge_count = sum(len(node["outEdges"]) for node in graph["graph"])
            sizes.append((len(graph["graph"]), edge_count, graph["truncated"]))
        n, e, truncated = max(sizes)
        print(
            f"{direction:<11}{depth:>6}{n:>7}{e:>7}{str(truncated):>7}"
            f"{statistics.median(walk_ms):>8.1f}ms{percentile(walk_ms, 0.95):>8.1f}ms"
            f"{statistics.median(api_ms):>8.1f}ms{percentile(api_ms, 0.95):>8.1f}ms"
        )


if __name__ == "__main__":
    main()
