"""Settings: ``base`` (embedded default, development), ``test`` and ``production``."""
