"""``gc`` for an S3 bucket (``--blob-url``): delete objects that no row names.

The same rules as ops/blob_gc.py, with the bucket's LastModified as the age: objects younger
than ``min_age`` are kept, since an upload may be about to commit the row that names it. Storing a
blob always PUTs it, even when the bucket has those bytes already (store/s3_blobs.py), so reusing
an old object makes it young again. Just before deleting, under the database's write lock, the
rows and the object's age are checked once more; what remains is a window of milliseconds between
that check and the delete in which a writer would have to put those very bytes again.
Objects whose names are not ``ab/cd/<sha256>`` are not ours and are left alone. Each node's local
copies are trimmed by the node itself (CacheTrimmer), not here.
"""

from __future__ import annotations

import time

from sqlalchemy import delete
from sqlalchemy.engine import Engine

from cheeseboard.ops.blob_gc import GcReport, _all_named, _named, report_missing
from cheeseboard.store.s3 import S3Client
from cheeseboard.store.s3_blobs import object_name
from cheeseboard.store.schema import blobs


class BucketCollector:
    """One collection over a bucket and its database."""

    def __init__(self, client: S3Client, engine: Engine, min_age: float) -> None:
        self.client = client
        self.engine = engine
        self.min_age = min_age
        self.report = GcReport()

    async def run(self, dry_run: bool = False) -> GcReport:
        cutoff = time.time() - self.min_age
        with self.engine.connect() as conn:
            named = _all_named(conn)
        present: set[str] = set()
        async for name, size, modified in self.client.list(""):
            sha256 = name.rpartition("/")[2]
            try:
                if object_name(sha256) != name:
                    continue
            except ValueError:
                continue  # not a blob of ours
            present.add(sha256)
            self.report.blobs_seen += 1
            if sha256 in named:
                continue
            if modified >= cutoff:
                self.report.kept_young += 1
                continue
            if not dry_run:
                # Under the database's write lock, so no row naming it can commit meanwhile.
                with self.engine.begin() as conn:
                    if _named(conn, sha256):  # named since the listing
                        continue
                    now_modified = await self.client.modified(name)
                    if now_modified is None:
                        continue
                    if now_modified >= cutoff:  # put again since the listing: in use
                        self.report.kept_young += 1
                        continue
                    await self.client.delete(name)
                    conn.execute(delete(blobs).where(blobs.c.sha256 == sha256))
            self.report.collected += 1
            self.report.collected_bytes += size
        report_missing(self.engine, self.report, present.__contains__)
        return self.report
