"""Committed outputs in the store (for resume), on SQLite and on PostgreSQL: saved, replaced
per job and item key, listed per job."""

from __future__ import annotations

from batchtransform.store import CommitRecord, open_store


def commit(job: str, key: str, stamp: str, records: int = 3) -> CommitRecord:
    counters = {"records": records, "bytes_in": 10, "failed_records": 1}
    return CommitRecord(job, key, f"s3://b/out/{key}.out", stamp, counters, 1_700_000_000.25)


def test_commits_are_saved_replaced_and_listed_per_job(database_url: str) -> None:
    store = open_store(database_url)
    long_key = "deep/" * 300 + "a.csv#0-67108864"
    store.record_commits([commit("j1", "a.csv", "3:etag-1"), commit("j1", long_key, "9:1.5")])
    store.record_commits([commit("j2", "a.csv", "3:other")])
    store.record_commits([commit("j1", "a.csv", "4:etag-2", records=4)])  # a redo replaces
    store.record_commits([])

    found = {c.item_key: c for c in store.list_commits("j1")}
    assert set(found) == {"a.csv", long_key}
    assert found["a.csv"] == commit("j1", "a.csv", "4:etag-2", records=4)
    assert found[long_key].counters == {"records": 3, "bytes_in": 10, "failed_records": 1}
    assert [c.stamp for c in store.list_commits("j2")] == ["3:other"]
    assert store.list_commits("nobody") == []
