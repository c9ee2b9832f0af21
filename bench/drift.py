"""Drift engine benchmark (issue 9): Tollgate's engine against Evidently and plain SciPy on the same Parquet data.

    .venv/bin/python bench/drift.py                      # 100k and 1M rows
    .venv/bin/python bench/drift.py --rows 100000 --skip-evidently

Data: 20 numerical + 5 categorical columns, reference and current windows of equal size, 5 columns drifted,
written once as Parquet (snappy) under --data. Every measurement runs in a fresh process and reports wall
time and peak resident memory (VmHWM; the warm run resets it first with /proc/self/clear_refs, so its peak
includes the cached reference profile but not the cold run before it). Imports are not timed.

- engine cold: a check run from claim to saved verdict with the reference not cached: read the reference
  Parquet, profile it, read the batch, compute, write the per-column results as JSON. The database claim and
  the save are two short UPDATEs that this pure benchmark leaves out.
- engine warm: the same with the reference profile already in the process cache (the next batch of a monitor).
- scipy: pandas.read_parquet of both files and SciPy per column, the statistics Evidently chooses here
  (normed Wasserstein for numbers, Jensen-Shannon for categories), NaN and +-inf dropped as Evidently does.
- evidently: DataDriftPreset() on Datasets built from the same Parquet files, Report.run and .dict().

Raw per-column verdicts of the three must be identical; the script says so or fails.
Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NUMERICAL = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
DRIFTED = {"num_00", "num_01", "num_02", "num_03", "cat_0"}


def generate(rows: int, directory: Path) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = directory / f"reference_{rows}.parquet", directory / f"current_{rows}.parquet"
    if all(p.exists() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    for seed, path in enumerate(paths):
        current = seed == 1
        rng = np.random.default_rng(1000 + seed)
        columns = {}
        for i, name in enumerate(NUMERICAL):
            shift = 0.25 if current and name in DRIFTED else 0.0
            kind = i % 4
            if kind == 0:
                values = rng.normal(shift, 1.0 + i / 10, rows)
            elif kind == 1:
                values = rng.lognormal(shift, 0.75, rows)
            elif kind == 2:
                values = rng.uniform(0, 100, rows) + 30 * shift
            else:  # integers with many values, with a few missing
                ints = rng.integers(18, 90, rows) + int(40 * shift)
                values = pa.array(ints, mask=rng.random(rows) < 0.01)
            if kind in (0, 1):
                values[rng.random(rows) < 0.005] = np.nan
            columns[name] = values
        for i, name in enumerate(CATEGORICAL):
            k = 4 + 3 * i
            p = np.linspace(2, 1, k)
            if current and name in DRIFTED:
                p = p[::-1]
            labels = np.array([f"{name}_v{j}" for j in range(k)], dtype=object)
            columns[name] = pa.array(rng.choice(labels, rows, p=p / p.sum()), pa.string())
        pq.write_table(pa.table(columns), path)
    return paths


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


# --- workers: each prints one JSON line ---


def worker_engine(reference: str, current: str, threads: int) -> dict:
    from monitoring.checks import engine

    config = engine.DriftConfig(numerical=NUMERICAL, categorical=CATEGORICAL)
    out = Path(tempfile.mkdtemp(prefix="tollgate-drift-"))

    def check_run(n: int):
        start = time.perf_counter()
        profile = engine.profile_cached("reference-sha256", lambda: engine.read_table(reference, config), config)
        result = engine.drift(profile, engine.read_table(current, config), config, threads=threads)
        (out / f"verdict_{n}.json").write_text(json.dumps(result.as_dict()))
        return time.perf_counter() - start, result

    cold, result = check_run(1)
    cold_peak = peak_mb()
    gc.collect()
    reset_peak()
    warm, _ = check_run(2)
    assert engine.CACHE.hits == 1
    return {
        "cold": {"seconds": cold, "peak_mb": cold_peak},
        "warm": {"seconds": warm, "peak_mb": peak_mb()},
        "verdicts": {c.column: c.drifted for c in result.columns},
        "scores": {c.column: c.score for c in result.columns},
        "methods": {c.column: c.method for c in result.columns},
        "dataset": result.drift_detected,
    }


def worker_scipy(reference: str, current: str) -> dict:
    import numpy as np
    import pandas as pd
    from scipy import stats
    from scipy.spatial import distance

    start = time.perf_counter()
    ref_df, cur_df = pd.read_parquet(reference), pd.read_parquet(current)
    verdicts, scores = {}, {}
    for name in NUMERICAL:
        ref = ref_df[name].replace([-np.inf, np.inf], np.nan).dropna()
        cur = cur_df[name].replace([-np.inf, np.inf], np.nan).dropna()
        score = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
        verdicts[name], scores[name] = bool(score >= 0.1), float(score)
    for name in CATEGORICAL:
        ref, cur = ref_df[name].value_counts(), cur_df[name].value_counts()
        keys = sorted(set(ref.index) | set(cur.index))
        p = ref.reindex(keys, fill_value=0).to_numpy() / ref.sum()
        q = cur.reindex(keys, fill_value=0).to_numpy() / cur.sum()
        score = float(distance.jensenshannon(p, q))
        verdicts[name], scores[name] = score >= 0.1, score
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(), "verdicts": verdicts, "scores": scores}


def worker_evidently(reference: str, current: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    ref = Dataset.from_pandas(pd.read_parquet(reference), data_definition=definition)
    cur = Dataset.from_pandas(pd.read_parquet(current), data_definition=definition)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(cur, ref).dict()
    seconds = time.perf_counter() - start
    verdicts, scores = {}, {}
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            verdicts[params["column"]] = str(test["status"]).endswith("FAIL")
    for metric in snapshot["metrics"]:
        if metric["metric_name"].startswith("ValueDrift"):
            scores[metric["config"]["column"]] = metric["value"]
    dataset = [
        {"share": m["value"]["share"], "dataset_drift": m["value"]["share"] >= 0.5}
        for m in snapshot["metrics"]
        if m["metric_name"].startswith("DriftedColumnsCount")
    ]
    return {"seconds": seconds, "peak_mb": peak_mb(), "verdicts": verdicts, "scores": scores, "dataset": dataset}


def distance_rates(runs: int = 200) -> None:
    """How often the verdict rules alarm on windows where nothing drifted, by window size (no timing)."""
    import numpy as np
    import pandas as pd

    from monitoring.checks import engine

    kinds = {name: engine.NUMERICAL for name in NUMERICAL} | {name: engine.CATEGORICAL for name in CATEGORICAL}
    p = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    letters = np.array(list("abcdef"), dtype=object)
    rules = {"default": {}, "drift_share=0.3": {"drift_share": 0.3}}
    print(f"{'rows':>6} | methods | per-column rate | " + " | ".join(f"{r} rule" for r in rules))
    for rows in (500, 1001, 1500, 3000, 5000, 100_000):
        rng = np.random.default_rng(rows)
        n = runs if rows < 100_000 else runs // 10
        column_alarms = 0
        alarms = dict.fromkeys(rules, 0)
        methods = set()
        for _ in range(n):
            frames = [
                pd.DataFrame(
                    {
                        c: rng.normal(size=rows) if k == engine.NUMERICAL else rng.choice(letters, rows, p=p)
                        for c, k in kinds.items()
                    }
                )  # fmt: skip
                for _ in range(2)
            ]
            profile = engine.profile_reference(frames[0], engine.DriftConfig.from_dict({"columns": kinds}))
            for rule, extra in rules.items():
                config = engine.DriftConfig.from_dict({"columns": kinds, **extra})
                result = engine.drift(profile, frames[1], config, threads=1)
                alarms[rule] += result.drift_detected
            column_alarms += sum(c.drifted for c in result.columns)
            methods |= {c.method for c in result.columns}
        print(
            f"{rows:>6} | {'+'.join(sorted(methods))} | {column_alarms / (n * len(kinds)):.3f} | "
            + " | ".join(f"{alarms[r] / n:.3f}" for r in rules)
            + f"  ({n} runs)",
            flush=True,
        )


def small_window_rates(runs: int = 200, reference_rows: int = 200_000) -> None:
    """The per-column false-alarm rate of each method at its default threshold, by window size, against a large
    reference where nothing drifted: the measurements behind ``monitoring.checks.engine.RELIABLE_ROWS``."""
    import numpy as np
    import pandas as pd

    from monitoring.checks import engine

    rng = np.random.default_rng(0)
    numbers = {
        "normal": lambda n: rng.normal(size=n),
        "lognormal": lambda n: rng.lognormal(3.5, 1.0, n),
        "uniform": lambda n: rng.random(n),
        "integers": lambda n: rng.integers(0, 100, n).astype(float),
    }
    categories = {}
    for k in (4, 6, 10, 16):
        p = np.arange(k, 0, -1.0)
        categories[f"{k}_categories"] = (np.array([f"c{i}" for i in range(k)], dtype=object), p / p.sum())

    def frame(n: int):
        data = {name: draw(n) for name, draw in numbers.items()}
        data |= {name: rng.choice(values, n, p=p) for name, (values, p) in categories.items()}
        return pd.DataFrame(data)

    num = dict.fromkeys(numbers, engine.NUMERICAL)
    cat = dict.fromkeys(categories, engine.CATEGORICAL)
    setups = {
        "wasserstein": {"columns": num, "num_method": "wasserstein"},
        "jensenshannon (binned numbers)": {"columns": num, "num_method": "jensenshannon"},
        "jensenshannon (categories)": {"columns": cat, "cat_method": "jensenshannon"},
        "psi (binned numbers)": {"columns": num, "num_method": "psi"},
        "psi (categories)": {"columns": cat, "cat_method": "psi"},
        "ks": {"columns": num, "num_method": "ks", "fdr": None},
        "chi2_contingency": {"columns": cat, "cat_method": "chi2_contingency", "fdr": None},
    }
    reference = frame(reference_rows)
    configs = {name: engine.DriftConfig.from_dict(setup) for name, setup in setups.items()}
    profiles = {name: engine.profile_reference(reference, config) for name, config in configs.items()}
    sizes = (50, 100, 200, 300, 500, 700, 1000, 1500, 3000)
    print(f"per-column false-alarm rate (worst column), {runs} windows per size, {reference_rows:,} reference rows")
    print(f"{'method':<32} | " + " | ".join(f"{n:>6,}" for n in sizes))
    worst = {name: [] for name in setups}
    for n in sizes:
        alarms = {name: {} for name in setups}
        for _ in range(runs):
            current = frame(n)
            for name, config in configs.items():
                for column in engine.drift(profiles[name], current, config, threads=1).columns:
                    alarms[name][column.column] = alarms[name].get(column.column, 0) + column.drifted
        for name in setups:
            worst[name].append(max(alarms[name].values()) / runs)
    for name in setups:
        print(f"{name:<32} | " + " | ".join(f"{rate:>6.3f}" for rate in worst[name]), flush=True)


# --- the driver ---


def measure(kind: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench-drift")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: min(4, cores))")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--rates", action="store_true", help="false-alarm rates of the verdict rules, then exit")
    parser.add_argument(
        "--small-windows",
        action="store_true",
        help="false-alarm rates per method by window size against a large reference, then exit",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, reference, current, *rest = args.worker
        if kind == "engine":
            result = worker_engine(reference, current, int(rest[0]) if rest and rest[0] != "None" else None)
        else:
            result = {"scipy": worker_scipy, "evidently": worker_evidently}[kind](reference, current)
        print(json.dumps(result))
        return

    if args.rates:
        distance_rates()
        return
    if args.small_windows:
        small_window_rates()
        return
    print(f"cores: {os.cpu_count()}; columns: {len(NUMERICAL)} numerical + {len(CATEGORICAL)} categorical")
    header = f"{'rows':>9} | {'run':<31} | {'seconds':>7} | {'peak MB':>7} | {'time vs (b)':>11} | {'mem vs (b)':>10}"
    lines = [header, "-" * len(header)]
    for rows in args.rows:
        reference, current = (str(p) for p in generate(rows, args.data))
        engine = measure("engine", reference, current, str(args.threads))
        single = measure("engine", reference, current, "1")
        scipy = measure("scipy", reference, current)
        evidently = None if args.skip_evidently else measure("evidently", reference, current)
        runs = [
            ("Tollgate check, cold", engine["cold"]),
            ("Tollgate check, warm", engine["warm"]),
            ("Tollgate check, cold, 1 thread", single["cold"]),
            ("Tollgate check, warm, 1 thread", single["warm"]),
            ("(b) SciPy per column", scipy),
        ] + ([("(a) Evidently DataDriftPreset", evidently)] if evidently else [])
        for label, run in runs:
            lines.append(
                f"{rows:>9,} | {label:<31} | {run['seconds']:>7.2f} | {run['peak_mb']:>7.0f} | "
                f"{run['seconds'] / scipy['seconds']:>10.2f}x | {run['peak_mb'] / scipy['peak_mb']:>9.2f}x"
            )
        same = engine["verdicts"] == scipy["verdicts"] == single["verdicts"]
        if evidently:
            same = same and engine["verdicts"] == evidently["verdicts"]
            lines.append(
                f"{'':>9}   evidently / warm check: {evidently['seconds'] / engine['warm']['seconds']:.1f}x time, "
                f"{evidently['peak_mb'] / engine['warm']['peak_mb']:.1f}x memory; "
                f"evidently / cold check: {evidently['seconds'] / engine['cold']['seconds']:.1f}x time"
            )
        drifted = sorted(c for c, d in engine["verdicts"].items() if d)
        worst = max(abs(engine["scores"][c] - scipy["scores"][c]) for c in engine["scores"])
        lines.append(
            f"{'':>9}   raw per-column verdicts identical: {same}; drifted: {', '.join(drifted)}; "
            f"engine dataset verdict: {'drift' if engine['dataset'] else 'no drift'}; "
            f"max |score - scipy score| {worst:.1e}"
        )
        if evidently:
            lines.append(f"{'':>9}   Evidently's DriftedColumnsCount (drift_share=0.5): {evidently['dataset']}")
        print("\n".join(lines[-(len(runs) + 3 + bool(evidently)) :]), flush=True)
        if not same:
            raise SystemExit("raw per-column verdicts differ")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
