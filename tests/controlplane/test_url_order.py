"""The URL patterns are tried in order, and governance/urls.py puts the API's hot paths first: that order may decide
nothing else. Every API route's path (with sample values for its parameters) matches exactly one API pattern, so
any order of the concerns' patterns resolves every path to the same view. (The console ends with a catch-all of
its own, which is meant to come last.)"""

import re

from django.urls import URLPattern, URLResolver, get_resolver, resolve

SAMPLES = {
    "str": "fraud-gbm",
    "slug": "fraud",
    "int": "7",
    "path": "a/b.parquet",
    "uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
}
PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _routes(patterns, prefix_route="", prefix_regex=""):
    """(route, full regex, url name) of every named pattern under ``patterns``."""
    for entry in patterns:
        route = str(entry.pattern)
        regex = entry.pattern.regex.pattern.lstrip("^").rstrip("$").removesuffix(r"\Z")
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix_route + route, prefix_regex + regex)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix_route + route, re.compile(prefix_regex + regex), entry.name


def test_every_route_matches_exactly_one_pattern():
    routes = [r for r in _routes(get_resolver().url_patterns) if r[0].startswith("api/")]
    assert len(routes) > 50
    for route, _, name in routes:
        if route.startswith("^"):  # a regex route (none of ours): no sample path to build
            continue
        sample = PARAMETER.sub(lambda m: SAMPLES[m["converter"] or "str"], route)
        matching = [other for other_route, regex, other in routes if regex.fullmatch(sample)]
        assert matching == [name], f"/{sample} matches {matching}"
        assert resolve(f"/{sample}").url_name == name
