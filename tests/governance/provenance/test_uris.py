"""Registered URIs (DESIGN §6): allow-listed schemes, decoded once, no path tricks, the project's own prefix."""

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.errors import domain_error_status
from controlplane.exceptions import DomainError
from governance.provenance.uris import CheckedUri, check_uri

PROJECT = SimpleNamespace(slug="fraud")


def refused(uri: str, **kwargs) -> str:
    with pytest.raises(DomainError) as caught:
        check_uri(uri, project=PROJECT, **kwargs)
    assert domain_error_status(caught.value) == 400
    return caught.value.details[0]["message"]


@pytest.mark.parametrize(
    "uri",
    [
        "s3://fraud-raw/transactions/2026-10.parquet",
        "S3://fraud-raw/transactions/2026-10.parquet",
        "gs://bucket/a/b.csv",
        "az://container/path/file.parquet",
        "abfs://container@account.dfs.core.windows.net/path/x.parquet",
        "hdfs://namenode:8020/warehouse/t",
        "hdfs:///warehouse/t",
        "https://data.example.org/exports/x.parquet?version=3",
        "s3://bucket/my%20file.parquet",
        "s3://bucket/100%25.csv",
        "s3://bucket/..hidden/x",
    ],
)
def test_it_accepts_allow_listed_schemes(uri):
    assert check_uri(uri, project=PROJECT) == CheckedUri(uri=uri, storage_path="")


def test_a_storage_uri_of_the_project_gives_its_storage_path():
    checked = check_uri("storage://projects/fraud/datasets/raw/2026-10.parquet", project=PROJECT)
    assert checked.storage_path == "projects/fraud/datasets/raw/2026-10.parquet"
    assert checked.is_stored


@pytest.mark.parametrize(
    "uri",
    [
        "storage://projects/other/datasets/x.parquet",
        "storage://projects/fraud",
        "storage://projects/fraud/",
        "storage://projects/fraud/datasets//x.parquet",
        "storage://projects//fraud/x.parquet",
        "storage://elsewhere/fraud/x.parquet",
        "storage://projects/fraud/x.parquet?y=1",
        "storage://projects/fraud/x%3Fy.parquet",
        "storage://projects/fraud/x.parquet#frag",
        "storage://projects/%2E%2E/fraud/x.parquet",
        "storage://projects/fraud/%2E%2E/other/x.parquet",
    ],
)
def test_a_storage_uri_names_only_a_file_in_the_callers_own_prefix(uri):
    refused(uri)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("ftp://host/file.csv", "not allowed"),
        ("http://host/file.csv", "not allowed"),
        ("file:///etc/passwd", "not allowed"),
        ("javascript:alert(1)", "not allowed"),
        ("/local/path.csv", "no scheme"),
        ("bucket/key.csv", "no scheme"),
        ("s3%3A//bucket/key", "no scheme"),
        ("s3:bucket/key", "s3://"),
        ("s3://bucket", "empty path"),
        ("s3://bucket/", "empty path"),
        ("s3:///key", "no bucket"),
        ("https://user:secret@host/x.csv", "credentials"),
        ("https://token@host/x.csv", "credentials"),
        ("abfs://container:key@account.dfs.core.windows.net/x", "credentials"),
        ("s3://bucket/a/../b", "'..'"),
        ("s3://bucket/a/./b", "'..'"),
        ("s3://bucket/a/%2e%2e/b", "'..'"),
        ("s3://bucket/a/%2E%2E/b", "'..'"),
        ("s3://bucket/a/..;x/b", "'..'"),
        ("s3://bucket/a/\uff0e\uff0e/b", "'..'"),
        ("s3://../b", "'..'"),
        ("s3://bucket/a%2f..%2fb", "'..'"),
        ("s3://bucket/a/%252e%252e/b", "encoded more than once"),
        ("s3://bucket/a%25252Fb", "encoded more than once"),
        ("s3://bucket/a\\b", "backslash"),
        ("s3://bucket/a%5cb", "backslash"),
        ("s3://bucket/a\uff3cb", "backslash"),
        ("s3://bucket/a%00b", "control"),
        ("s3://bucket/a\nb", "control"),
        ("s3://bucket/a%0Db", "control"),
        ("s3://bucket/a\u202eb", "invisible"),
        ("s3://bucket/a%ffb", "UTF-8"),
        (" s3://bucket/a", "whitespace"),
        ("", "required"),
        ("s3://bucket/" + "a" * 2000, "longer"),
    ],
)
def test_it_refuses_path_tricks_with_a_reason(uri, reason):
    assert reason in refused(uri)


def test_the_error_names_the_field():
    with pytest.raises(DomainError) as caught:
        check_uri("ftp://x/y", project=PROJECT, field="artifact_uri")
    assert caught.value.details[0]["field"] == "artifact_uri"
    assert caught.value.code == "invalid_uri"


def test_file_uris_need_the_setting(settings):
    refused("file:///data/x.csv")
    settings.TOLLGATE_ALLOW_FILE_URIS = True
    assert check_uri("file:///data/x.csv", project=PROJECT).uri == "file:///data/x.csv"
    refused("file://otherhost/data/x.csv")
    refused("file:///data/../etc/passwd")


def test_the_scheme_list_is_a_setting(settings):
    settings.TOLLGATE_URI_SCHEMES = ["s3"]
    check_uri("s3://b/k", project=PROJECT)
    assert "not allowed" in refused("gs://b/k")
    settings.TOLLGATE_URI_SCHEMES = ["s3", "file"]
    assert "not allowed" in refused("file:///data/x.csv")  # listing file is not enough


# --- Fuzzing: whatever the encoding, an accepted URI never decodes to a traversal. ---

DOTS = st.sampled_from(["..", ".", "%2e%2e", "%2E.", ".%2e", "%2e", "%252e%252e", "\uff0e\uff0e", "..;x"])
SEPARATORS = st.sampled_from(["/", "%2f", "%2F", "\\", "%5c", "%255c", "\uff0f"])
WORDS = st.text(alphabet="abcxyz019-_", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(WORDS, max_size=3),
    dots=DOTS,
    separator=SEPARATORS,
    after=st.lists(WORDS, min_size=1, max_size=3),
)
def test_no_encoding_of_a_dot_segment_gets_through(before, dots, separator, after):
    path = separator.join([*before, dots, *after])
    uri = f"storage://projects/fraud/{path}"
    try:
        checked = check_uri(uri, project=PROJECT)
    except DomainError:
        return
    # Accepted: then the path is plain -- no dot segment and no backslash, however it is decoded.
    segments = checked.storage_path.split("/")
    assert segments[:2] == ["projects", "fraud"]
    assert not any(set(s.split(";")[0]) == {"."} for s in segments)
    assert "\\" not in checked.storage_path and "%" not in checked.storage_path


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_accepted_or_refused_with_a_400(tail):
    try:
        checked = check_uri(f"storage://projects/fraud/{tail}", project=PROJECT)
    except DomainError as exc:
        assert domain_error_status(exc) == 400
        return
    assert checked.storage_path.startswith("projects/fraud/")
    assert ".." not in checked.storage_path.split("/")
