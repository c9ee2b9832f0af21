"""``fields_of``: what a model instance holds, with its select_related objects, for comparing what a prepared query
(controlplane.prepared) answers with what its queryset answers."""


def fields_of(obj, *relations) -> dict:
    """Every concrete field of ``obj`` and of each of its (dotted) select_related ``relations``."""
    out = {}
    for path in ("", *relations):
        target = obj
        for part in filter(None, path.split(".")):
            target = getattr(target, part)
        out[path] = {f.attname: getattr(target, f.attname) for f in target._meta.concrete_fields}
    return out
