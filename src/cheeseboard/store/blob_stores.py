"""Which blob store a server uses: the data directory's, or a bucket picked by ``--blob-url``.

The one place that names the concrete stores (store/blobs.py, store/s3_blobs.py); everything
above store/ holds a ``BlobStore`` and nothing more.
"""

from __future__ import annotations

from cheeseboard.settings import Settings
from cheeseboard.store.blobs import BlobStore, FileBlobStore

_CACHE_TRIM_INTERVAL = 60.0  # seconds between checks of a node's local copies of bucket blobs


def open_blob_store(settings: Settings) -> BlobStore:
    """The data directory's blobs, or the bucket of ``--blob-url`` with them as its cache
    (kept within ``--blob-cache-size``). Call ``start`` before use and ``close`` after."""
    local = FileBlobStore(settings.layout.blobs)
    if not settings.blob_url:
        return local
    # Imported here: the S3 client brings aiohttp, which a server without a bucket never needs
    # (a tenth of a second of start-up and several MiB per worker).
    from cheeseboard.store.s3 import S3Client, S3Location
    from cheeseboard.store.s3_blobs import CacheTrimmer, S3BlobStore

    client = S3Client(
        S3Location.from_url(settings.blob_url),
        settings.request_timeout * 6,
        ca_bundle=settings.ca_bundle,
    )
    trimmer = CacheTrimmer(local, settings.blob_cache_size, settings.layout.cache_trim_lock)
    return S3BlobStore(local, client, trimmer, _CACHE_TRIM_INTERVAL)
