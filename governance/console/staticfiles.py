"""Plotly's JavaScript as a static file of the console, straight from the plotly package (it arrives with
Evidently): ``console/vendor/plotly.min.js``. Nothing is copied into the repository, and no CDN is used; in
production ``collectstatic`` collects it with the rest (this finder is in ``STATICFILES_FINDERS``)."""

import os
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.files.storage import FileSystemStorage

PLOTLY_PATH = "console/vendor/plotly.min.js"


def _plotly_file() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


class PlotlyFinder(finders.BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != PLOTLY_PATH:
            return [] if find_all else None
        found = str(_plotly_file())
        return [found] if find_all else found

    def list(self, ignore_patterns):
        source = _plotly_file()
        storage = FileSystemStorage(location=str(source.parent))
        storage.prefix = os.path.dirname(PLOTLY_PATH)
        yield source.name, storage


def plotly_version() -> str:
    import plotly

    return plotly.__version__
