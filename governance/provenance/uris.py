"""Checking registered URIs (DESIGN §6): dataset version URIs, model artifact URIs.

``check_uri`` is the one gate every registered URI passes. It accepts an allow-listed scheme
(``TOLLGATE_URI_SCHEMES``; ``file:`` only when ``TOLLGATE_ALLOW_FILE_URIS`` is on), decodes the URI exactly
once and refuses what could mean something else to whoever reads it later: text that still decodes further
(double encoding), ``.`` or ``..`` segments, backslashes, control characters, credentials in the authority and
an empty path. The web process never fetches a registered URI; workers read only what ``storage_path`` names.

``storage://projects/<slug>/<path>`` names a file under a project's own storage prefix. Only the caller's
project is accepted there, and the relative path inside Django's default storage comes back as
``storage_path``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from django.conf import settings

from controlplane.exceptions import DomainError

STORAGE_SCHEME = "storage"
STORAGE_ROOT = "projects"
MAX_URI_LENGTH = 2000
# Schemes whose authority may be empty: hdfs:///path uses the default namenode, file:///path is local.
EMPTY_AUTHORITY_SCHEMES = frozenset({"hdfs", "file"})
# Schemes whose authority names a container before the ``@`` (abfs://container@account.dfs...), not a user.
USERINFO_SCHEMES = frozenset({"abfs", "abfss", "wasb", "wasbs"})

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
# Control, format (invisible, bidi overrides), surrogate, private-use, unassigned, line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True)
class CheckedUri:
    """A URI that passed ``check_uri``: the text as given, and -- for a ``storage://`` URI -- the relative
    path inside the default storage (empty for any other scheme)."""

    uri: str
    storage_path: str = ""

    @property
    def is_stored(self) -> bool:
        return bool(self.storage_path)


def allowed_schemes() -> frozenset[str]:
    schemes = {s.lower() for s in settings.TOLLGATE_URI_SCHEMES} - {"file"}
    if settings.TOLLGATE_ALLOW_FILE_URIS:
        schemes.add("file")
    return frozenset(schemes)


def storage_uri(storage_path: str) -> str:
    """The ``storage://`` URI of a path inside the default storage (``projects/<slug>/...``)."""
    return f"{STORAGE_SCHEME}://{storage_path}"


def _dot_segment(segment: str) -> bool:
    """``.``, ``..`` and their look-alikes: ``..;param`` (servlet containers), ``...``, fullwidth dots."""
    core = unicodedata.normalize("NFKC", segment).split(";", 1)[0].strip()
    return bool(core) and set(core) == {"."}


def check_uri(uri: str, *, project, field: str = "uri") -> CheckedUri:
    """Accept ``uri`` for ``project`` or raise ``DomainError`` (400) whose details name ``field``.

    The URI is returned as given (it is decoded once here only to be judged); ``project`` is the caller's
    project, the only one whose ``storage://projects/<slug>/`` prefix is accepted.
    """

    def refuse(reason: str) -> NoReturn:
        raise DomainError(
            f"{field}: {reason}", code="invalid_uri", details=[{"field": field, "message": reason, "code": "invalid"}]
        )

    if not isinstance(uri, str) or not uri:
        refuse("A URI is required.")
    if len(uri) > MAX_URI_LENGTH:
        refuse(f"The URI is longer than {MAX_URI_LENGTH} characters.")
    if uri != uri.strip():
        refuse("The URI starts or ends with whitespace.")
    try:
        decoded = unquote(uri, errors="strict")
    except UnicodeDecodeError:
        refuse("The URI's percent-encoding does not decode to UTF-8.")
    if _ENCODED.search(decoded):
        refuse("The URI is encoded more than once (it still has %-sequences after decoding).")
    if any(unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in decoded):
        refuse("The URI contains control or invisible characters.")
    if "\\" in decoded or "\\" in unicodedata.normalize("NFKC", decoded):
        refuse("The URI contains a backslash.")

    parts = urlsplit(decoded)
    scheme = parts.scheme.lower()
    if not scheme or not uri.lower().startswith(f"{scheme}:"):
        refuse("The URI has no scheme (such as s3:// or storage://).")
    if scheme not in allowed_schemes():
        refuse(f"The scheme '{scheme}' is not allowed here (allowed: {', '.join(sorted(allowed_schemes()))}).")
    if not decoded[len(scheme) + 1 :].startswith("//"):
        refuse(f"Write the URI as {scheme}://...")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    if userinfo is not None and (scheme not in USERINFO_SCHEMES or ":" in userinfo or not userinfo):
        refuse("The URI carries credentials; register the location only.")
    if not parts.netloc and scheme not in EMPTY_AUTHORITY_SCHEMES:
        refuse("The URI has no bucket or host.")
    normalized_path = unicodedata.normalize("NFKC", parts.path)
    if any(_dot_segment(s) for s in [parts.netloc, *parts.path.split("/"), *normalized_path.split("/")]):
        refuse("The URI has a '.' or '..' segment.")
    if not parts.path.strip("/"):
        refuse("The URI has an empty path.")

    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            refuse("A file: URI names a local path (file:///...).")
        return CheckedUri(uri=uri)
    if scheme != STORAGE_SCHEME:
        return CheckedUri(uri=uri)

    # storage://projects/<slug>/<path>: the caller's own prefix only, written plainly.
    if parts.query or parts.fragment or "?" in decoded or "#" in decoded:
        refuse("A storage:// URI has no query or fragment.")
    if parts.netloc != STORAGE_ROOT:
        refuse(f"A storage:// URI starts with storage://{STORAGE_ROOT}/<project>/.")
    segments = parts.path.split("/")[1:]
    if project is None or segments[0] != project.slug:
        refuse("A storage:// URI may only name this project's own storage prefix.")
    if len(segments) < 2 or "" in segments:
        refuse("A storage:// URI names a file inside the project's prefix, with no empty segments.")
    return CheckedUri(uri=uri, storage_path="/".join([STORAGE_ROOT, *segments]))
