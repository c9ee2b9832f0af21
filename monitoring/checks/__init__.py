"""The checks themselves, pure (frames and a config in, plain results out; no ORM, no storage, no settings):
``engine`` (the data_drift verdicts, NumPy over Parquet), ``stattests`` (the engine's own test, registered with
Evidently), ``definitions`` (kinds, methods, defaults, result types: what the web process needs, without
Evidently), ``quality`` (data_quality and model_quality with Evidently) and ``reports`` (the Evidently report of a
run). ``monitoring.services`` reads the data, calls these, and writes what they return."""
