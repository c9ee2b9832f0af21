"""Files under a project's storage prefix, and the dataset upload pipeline (DESIGN §4, §6).

Every project owns ``projects/<slug>/`` in Django's default storage (a local folder by default, S3-compatible
in production). An upload travels like this, never whole in the web process's memory:

1. ``HashingUploadHandler`` streams the multipart file to a temporary file, computing its SHA-256 and
   refusing it (413) once it passes ``TOLLGATE_MAX_UPLOAD_BYTES``;
2. ``store_dataset_file`` reads a Parquet file's schema and row count from its footer and stores it as is,
   or converts a CSV file to Parquet batch by batch (``pyarrow.csv.open_csv`` into a ``ParquetWriter``);
3. the result goes to ``projects/<slug>/datasets/<dataset id>/<sha256>.parquet``.

The SHA-256 is over the uploaded bytes (what the client holds and can check), not over the stored Parquet.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from controlplane.exceptions import DomainError, PayloadTooLarge
from governance.provenance.uris import STORAGE_ROOT, storage_uri

PARQUET_MAGIC = b"PAR1"
CSV_CONTENT_TYPES = {"text/csv", "application/csv", "text/comma-separated-values"}
CSV_BLOCK_BYTES = 4 * 1024 * 1024  # CSV types are inferred from the first block; a larger block sees more rows
HASH_CHUNK_BYTES = 1024 * 1024


class UploadTooLarge(PayloadTooLarge):
    """An uploaded file is larger than the limit (the handler stops reading at it)."""


def project_prefix(project) -> str:
    """The project's folder in the default storage, with a trailing slash: ``projects/<slug>/``."""
    return f"{STORAGE_ROOT}/{project.slug}/"


def dataset_file_path(project, dataset_id: int, sha256: str) -> str:
    return f"{project_prefix(project)}datasets/{dataset_id}/{sha256}.parquet"


# --- 1. Receiving the upload ---


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Streams each uploaded file to a temporary file (never to memory), hashing it on the way, and stops
    at ``TOLLGATE_MAX_UPLOAD_BYTES`` over all files of the request. The file gets a ``sha256`` attribute."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.TOLLGATE_MAX_UPLOAD_BYTES
        self.received = 0
        self.hasher = None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.hasher = hashlib.sha256()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()  # a NamedTemporaryFile: closing removes it
            raise UploadTooLarge(f"The upload is larger than the limit of {self.limit} bytes.")
        self.hasher.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        file = super().file_complete(file_size)
        file.sha256 = self.hasher.hexdigest()
        return file


def file_sha256(file) -> str:
    """The SHA-256 of a file's bytes: the one the upload handler computed, or read in chunks."""
    known = getattr(file, "sha256", None)
    if known:
        return known
    hasher = hashlib.sha256()
    file.seek(0)
    for chunk in iter(lambda: file.read(HASH_CHUNK_BYTES), b""):
        hasher.update(chunk)
    file.seek(0)
    return hasher.hexdigest()


# --- 2. Reading and converting ---


@dataclass(frozen=True)
class StoredFile:
    """What the registry records of a stored upload. ``size_bytes`` is the uploaded size, like the hash."""

    storage_path: str
    uri: str
    size_bytes: int
    row_count: int
    schema: list[dict]


def simple_type(arrow_type: pa.DataType) -> str:
    """A column type as the registry records it: integer, float, string, boolean, datetime (or binary,
    list, struct, other for what a Parquet file may hold beyond those)."""
    types = pa.types
    if types.is_integer(arrow_type):
        return "integer"
    if types.is_floating(arrow_type) or types.is_decimal(arrow_type):
        return "float"
    if types.is_boolean(arrow_type):
        return "boolean"
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_null(arrow_type):
        return "string"
    if types.is_temporal(arrow_type):
        return "datetime"
    if types.is_binary(arrow_type) or types.is_large_binary(arrow_type) or types.is_fixed_size_binary(arrow_type):
        return "binary"
    if types.is_list(arrow_type) or types.is_large_list(arrow_type):
        return "list"
    if types.is_struct(arrow_type) or types.is_map(arrow_type):
        return "struct"
    if types.is_dictionary(arrow_type):
        return simple_type(arrow_type.value_type)
    return "other"


def schema_of(arrow_schema: pa.Schema) -> list[dict]:
    return [{"name": f.name, "type": simple_type(f.type)} for f in arrow_schema]


def _unreadable(message: str) -> DomainError:
    return DomainError(message, code="unreadable_file", details=[{"field": "file", "message": message}])


def _source(file):
    """What pyarrow reads: the temporary file's path when there is one (native I/O), else the file object."""
    if hasattr(file, "temporary_file_path"):
        return file.temporary_file_path()
    file.seek(0)
    return file


def _size(file) -> int:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


def _head(file, size: int) -> bytes:
    file.seek(0)
    head = file.read(size)
    file.seek(0)
    return head


def file_format(file) -> str:
    """``parquet`` (by its magic bytes) or ``csv`` (by its name or content type); anything else is a 400."""
    if _head(file, 4) == PARQUET_MAGIC:
        return "parquet"
    name = (getattr(file, "name", "") or "").lower()
    content_type = (getattr(file, "content_type", "") or "").split(";")[0].strip().lower()
    if name.endswith(".csv") or content_type in CSV_CONTENT_TYPES:
        return "csv"
    raise _unreadable("Upload a Parquet file or a CSV file (named .csv or sent as text/csv).")


def _parquet_facts(file) -> tuple[int, list[dict]]:
    try:
        parquet = pq.ParquetFile(_source(file))
        return parquet.metadata.num_rows, schema_of(parquet.schema_arrow)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(f"The file is not readable Parquet: {exc}") from exc


def _open_csv(file, column_types=None) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        _source(file),
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(column_types=column_types or {}),
    )


def _csv_to_parquet(file, out_path: str, column_types: dict | None = None) -> tuple[int, list[dict]]:
    """Convert batch by batch. Types are inferred from the first block (``CSV_BLOCK_BYTES``) unless
    ``column_types`` names them; a column empty there is read as text rather than as nulls (which later values
    could not fill). Text must be UTF-8."""
    try:
        known = dict(column_types or {})
        reader = _open_csv(file, known)
        empty = {f.name: pa.string() for f in reader.schema if pa.types.is_null(f.type) and f.name not in known}
        if empty:
            reader = _open_csv(file, {**known, **empty})
        not_text = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
        if not_text:
            raise _unreadable(f"The CSV file is not UTF-8 text (in the column '{not_text[0]}').")
        rows = 0
        with pq.ParquetWriter(out_path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows, schema_of(reader.schema)
    except UnicodeDecodeError as exc:
        raise _unreadable("The CSV file is not UTF-8 text (in its header).") from exc
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(f"The CSV file could not be read: {exc}") from exc


# --- 3. Storing ---


def _save(path: str, local_file) -> str:
    """Save under ``path``, or -- if a file is already there (a concurrent upload of the same bytes) -- under
    a name the storage picks beside it; nothing is ever overwritten. Returns the name used."""
    local_file.seek(0)
    return default_storage.save(path, File(local_file, name=os.path.basename(path)))


def store_dataset_file(*, project, dataset_id: int, file, sha256: str) -> StoredFile:
    """Validate an uploaded Parquet or CSV file and store it as Parquet under the project's prefix."""
    return store_data_file(path=dataset_file_path(project, dataset_id, sha256), file=file)


def store_data_file(*, path: str, file, column_types: dict | None = None) -> StoredFile:
    """Validate an uploaded Parquet or CSV file and store it as Parquet at ``path`` (under a project's
    prefix). ``column_types`` (name -> pyarrow type) fixes the types of those CSV columns instead of inferring
    them (e.g. codes that look like numbers but are text)."""
    if getattr(file, "size", None) == 0 or _head(file, 1) == b"":
        raise _unreadable("The uploaded file is empty.")
    if file_format(file) == "parquet":
        row_count, schema = _parquet_facts(file)
        stored = _save(path, file)
    else:
        with tempfile.NamedTemporaryFile(suffix=".parquet") as converted:
            row_count, schema = _csv_to_parquet(file, converted.name, column_types)
            with open(converted.name, "rb") as result:
                stored = _save(path, result)
    return StoredFile(
        storage_path=stored,
        uri=storage_uri(stored),
        size_bytes=_size(file),
        row_count=row_count,
        schema=schema,
    )


def delete_stored(storage_path: str) -> None:
    """Remove a file this request stored but did not register (a lost race, a refused registration)."""
    if storage_path and default_storage.exists(storage_path):
        default_storage.delete(storage_path)
