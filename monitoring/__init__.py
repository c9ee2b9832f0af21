"""Monitoring: monitors of deployed (or not yet deployed) model versions, the production batches they check, check
runs with their verdicts and Evidently reports, alerts, schedules and data retention; and the ``check`` gate that
promotion reads. Rooms as in every concern: ``models``, ``services/`` (writes), ``selectors`` (reads), ``api/``,
``tasks``, and ``checks/`` (the pure drift engine, quality checks and reports). See monitoring/README.md."""
