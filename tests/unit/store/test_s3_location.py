"""``S3Location.from_url`` (the ``--blob-url`` parser) and the pure SigV4 parts of the S3 client."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.parse
from datetime import UTC, datetime

import pytest

from cheeseboard.store import s3
from cheeseboard.store.s3 import S3Client, S3Location

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET}


def parse(url: str, **env: str) -> S3Location:
    return S3Location.from_url(url, environ={**CREDENTIALS, **env})


def test_full_url() -> None:
    location = parse("s3://my-bucket/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert location.bucket == "my-bucket"
    assert location.prefix == "some/prefix"
    assert location.endpoint == "http://127.0.0.1:9000"
    assert location.region == "eu-west-1"
    assert location.access_key == "AKIAIOSFODNN7EXAMPLE"
    assert location.secret_key == SECRET
    assert location.session_token is None


def test_defaults_are_aws_us_east_1_and_an_empty_prefix() -> None:
    location = parse("s3://bucket.with.dots")
    assert location.prefix == ""
    assert location.region == "us-east-1"
    assert location.endpoint == "https://s3.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("env", "endpoint", "region"),
    [
        ({"AWS_REGION": "eu-north-1"}, "https://s3.eu-north-1.amazonaws.com", "eu-north-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "https://s3.ap-south-1.amazonaws.com", "ap-south-1"),
        ({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "x"}, None, "eu-north-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "ca-central-1"}, None, "ca-central-1"),
        ({"AWS_ENDPOINT_URL": "http://minio:9000"}, "http://minio:9000", "us-east-1"),
        (
            {"AWS_ENDPOINT_URL": "http://general", "AWS_ENDPOINT_URL_S3": "http://s3only:1"},
            "http://s3only:1",
            None,
        ),
        # A default port is dropped: the Host header signed must be the one clients send.
        ({"AWS_ENDPOINT_URL_S3": "HTTPS://S3.Example.COM:443/"}, "https://s3.example.com", None),
        ({"AWS_ENDPOINT_URL_S3": "http://[::1]:9000"}, "http://[::1]:9000", None),
    ],
)
def test_environment_fallbacks(
    env: dict[str, str], endpoint: str | None, region: str | None
) -> None:
    location = parse("s3://bucket/p", **env)
    if endpoint is not None:
        assert location.endpoint == endpoint
    if region is not None:
        assert location.region == region


def test_url_wins_over_environment() -> None:
    location = parse(
        "s3://bucket?endpoint=http://here:1&region=here-1",
        AWS_ENDPOINT_URL_S3="http://env:2",
        AWS_REGION="env-2",
    )
    assert (location.endpoint, location.region) == ("http://here:1", "here-1")


def test_session_token_from_environment() -> None:
    assert parse("s3://bucket", AWS_SESSION_TOKEN="tok").session_token == "tok"
    assert parse("s3://bucket", AWS_SESSION_TOKEN="").session_token is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket/x", "must start with s3://"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://Upper", "invalid S3 bucket name"),
        ("s3://ab", "invalid S3 bucket name"),
        ("s3://under_score", "invalid S3 bucket name"),
        ("s3://-dash", "invalid S3 bucket name"),
        ("s3://a..b", "invalid S3 bucket name"),
        ("s3://192.168.1.1", "invalid S3 bucket name"),
        ("s3://bucket:9000", "invalid S3 bucket name"),
        ("s3://" + "a" * 64, "invalid S3 bucket name"),
        ("s3://key:secret@bucket", "must not contain credentials"),
        ("s3://bucket/a//b", "empty, '.' or '..'"),
        ("s3://bucket/a/../b", "empty, '.' or '..'"),
        ("s3://bucket#frag", "fragment"),
        ("s3://bucket?color=blue", "unknown blob URL parameter 'color'"),
        ("s3://bucket?region=a&region=b", "given twice"),
        ("s3://bucket?region=", "is empty"),
        ("s3://bucket?region=eu/west", "invalid S3 region"),
        ("s3://bucket?endpoint=ftp://host", "http:// or https://"),
        ("s3://bucket?endpoint=host:9000", "http:// or https://"),
        ("s3://bucket?endpoint=http://", "no host"),
        ("s3://bucket?endpoint=http://host/base", "scheme://host[:port] only"),
        ("s3://bucket?endpoint=http://host:99999", "invalid port"),
    ],
)
def test_invalid_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as failure:
        parse(url)
    assert SECRET not in str(failure.value)


def test_credentials_never_come_from_the_url() -> None:
    """A secret put in the URL by mistake is refused, and not repeated in the message."""
    leaked = "s3cr3t-in-the-url"
    for url in (
        f"s3://bucket?secret_key={leaked}",
        f"s3://bucket?aws_secret_access_key={leaked}&region=x",
        f"s3://bucket?endpoint=http://AKIA:{leaked}@host:9000",
    ):
        with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY") as failure:
            parse(url)
        assert leaked not in str(failure.value)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"AWS_ACCESS_KEY_ID": "id"}, "set AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "set AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": " ", "AWS_SECRET_ACCESS_KEY": SECRET}, "set AWS_ACCESS_KEY_ID"),
    ],
)
def test_missing_credentials(env: dict[str, str], missing: str) -> None:
    """One key without the other; neither at all means the rest of the AWS chain (see
    test_s3_credentials.py)."""
    with pytest.raises(ValueError, match=f"S3 credentials missing: {missing}") as failure:
        S3Location.from_url("s3://bucket", environ=env)
    assert SECRET not in str(failure.value)


def test_redacted_and_repr_hide_secrets() -> None:
    location = parse(
        "s3://bucket/pre/fix?endpoint=http://127.0.0.1:9000&region=eu-west-1",
        AWS_SESSION_TOKEN="session-token-value",
    )
    assert location.redacted() == (
        "s3://bucket/pre/fix?endpoint=http://127.0.0.1:9000&region=eu-west-1"
    )
    # The redacted form parses back to the same place.
    again = S3Location.from_url(location.redacted(), environ=CREDENTIALS)
    assert (again.bucket, again.prefix, again.endpoint, again.region) == (
        "bucket",
        "pre/fix",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    for text in (location.redacted(), repr(location), repr(S3Client(location))):
        assert SECRET not in text
        assert "session-token-value" not in text
    assert parse("s3://bucket").redacted().startswith("s3://bucket?endpoint=https://s3.")


# -- SigV4 -----------------------------------------------------------------------------------

AWS_EXAMPLE_DAY = datetime(2013, 5, 24, tzinfo=UTC)


def test_signature_matches_the_aws_documented_presigned_example() -> None:
    """The worked example of "Authenticating Requests: Using Query Parameters (SigV4)"."""
    client = S3Client(parse("s3://examplebucket"))
    query = s3._canonical_query(
        [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-Expires", "86400"),
            ("X-Amz-Date", "20130524T000000Z"),
            ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
        ]
    )
    assert query == (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
        "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
        "X-Amz-SignedHeaders=host"
    )
    canonical = "\n".join(
        [
            "GET",
            "/test.txt",
            query,
            "host:examplebucket.s3.amazonaws.com\n",
            "host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
    )
    scope, signature = client._signature(AWS_EXAMPLE_DAY, canonical)
    assert scope == "20130524/us-east-1/s3/aws4_request"
    assert signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_canonical_query_encoding_and_order() -> None:
    """Sorted by encoded name then value; only RFC 3986 unreserved characters stay as they are."""
    assert (
        s3._canonical_query([("b", "2"), ("a", "x y+z/é~"), ("uploads", ""), ("A", "1")])
        == "A=1&a=x%20y%2Bz%2F%C3%A9~&b=2&uploads="
    )


def test_paths_encode_each_segment_once() -> None:
    client = S3Client(parse("s3://bucket/pre"))
    assert client.key("a b/c+d") == "pre/a b/c+d"
    assert client._path(client.key("a b/c+d=é%~")) == "/bucket/pre/a%20b/c%2Bd%3D%C3%A9%25~"
    assert client._path(None) == "/bucket"
    assert S3Client(parse("s3://bucket")).key("x/y") == "x/y"
    for bad in ("", "/abs", "a//b", "a/./b", "../up", "tab\tname", "trailing/"):
        with pytest.raises(ValueError):
            client.key(bad)


def test_signed_headers_include_the_session_token() -> None:
    client = S3Client(parse("s3://bucket?endpoint=http://127.0.0.1:9000", AWS_SESSION_TOKEN="tok"))
    url, headers = client._signed_request("GET", "k", [("list-type", "2")], "UNSIGNED-PAYLOAD")
    assert url == "http://127.0.0.1:9000/bucket/k?list-type=2"
    assert headers["host"] == "127.0.0.1:9000"
    assert headers["x-amz-security-token"] == "tok"
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
        in (headers["Authorization"])
    )
    assert SECRET not in str(headers)


def test_presigned_url_shape() -> None:
    location = dataclasses.replace(
        parse("s3://bucket/p?endpoint=https://s3.example.com"), session_token="tok"
    )
    url = S3Client(location).presign_get("x y.whl", expires=60, filename='we"ird é.whl')
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "s3.example.com",
        "/bucket/p/x%20y.whl",
    )
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host"
    assert query["X-Amz-Security-Token"] == "tok"
    assert query["X-Amz-Credential"].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert len(query["X-Amz-Signature"]) == 64
    assert query["response-content-disposition"] == (
        "attachment; filename=\"we_ird _.whl\"; filename*=UTF-8''we%22ird%20%C3%A9.whl"
    )
    assert SECRET not in url
    with pytest.raises(ValueError):
        S3Client(location).presign_get("x", expires=0)
    with pytest.raises(ValueError):
        S3Client(location).presign_get("x", expires=8 * 24 * 3600)


def test_client_settings_are_checked() -> None:
    location = parse("s3://bucket")
    with pytest.raises(ValueError, match="part_size"):
        S3Client(location, part_size=1024)
    with pytest.raises(ValueError, match="timeout"):
        S3Client(location, timeout=0)
    with pytest.raises(ValueError, match="multipart_threshold"):
        S3Client(location, multipart_threshold=6 * 1024**3)
