"""Input sharding: keys, shard boundaries across files, clip columns, and the parallel writers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from v2d_vox.sharding import TableSpec, read_shard, shard_keys, shard_tables


def _tables(folder) -> list[str]:
    """A parquet (list clips, two row groups) and a csv (JSON-text clips, one empty) that shards span."""
    a = pa.table({"url": [f"http://h/a{i}.mp4" for i in range(23)], "n": list(range(23)),
                  "clips": [[[i, i + 2.5]] for i in range(23)]})
    pq.write_table(a, folder / "a.parquet", row_group_size=10)
    b = pa.table({"url": [f"http://h/b{i}.mp4" for i in range(12)], "n": list(range(100, 112)),
                  "clips": ["" if i == 3 else f"[[{i}, {i + 1}]]" for i in range(12)]})
    pcsv.write_csv(b, folder / "b.csv")
    return [str(folder / "a.parquet"), str(folder / "b.csv")]


@pytest.mark.parametrize("samples_per_shard, writers", [(1, 4), (7, 1), (7, 4), (10, 3), (1000, 2)])
def test_shards_keys_and_rows_in_input_order(tmp_path, samples_per_shard, writers):
    urls = _tables(tmp_path)
    spec = TableSpec(clip_col="clips", samples_per_shard=samples_per_shard)
    shards, rows = shard_tables(urls, str(tmp_path / "out"), spec, writers=writers)
    assert rows == 35 and shards == -(-35 // samples_per_shard)
    got = [row for sid in range(shards) for row in read_shard(str(tmp_path / "out"), sid)]
    width = len(str(samples_per_shard - 1))
    assert [r["key"] for r in got] == [f"{i // samples_per_shard:05d}{i % samples_per_shard:0{width}d}"
                                       for i in range(35)]
    assert [r["url"] for r in got] == [f"http://h/a{i}.mp4" for i in range(23)] + [
        f"http://h/b{i}.mp4" for i in range(12)]
    assert [r["n"] for r in got] == list(range(23)) + list(range(100, 112))
    clips = [r["clips"] for r in got]
    assert json.loads(clips[5]) == [[5, 7.5]] and json.loads(clips[23 + 2]) == [[2, 3]]
    assert clips[23 + 3] is None  # an empty cell means no clips


@pytest.mark.parametrize("shard_id, width", [(0, 1), (7, 3), (99_999, 4), (123_456, 3), (3_000_000, 6)])
def test_vectorised_keys_equal_the_format(shard_id, width):
    """Also past shard 99999, where the shard part grows beyond five digits."""
    rows = np.array([0, 1, 9, 10**width - 1], dtype=np.int64)
    assert shard_keys(shard_id, rows, width).to_pylist() == [f"{shard_id:05d}{r:0{width}d}" for r in rows]
