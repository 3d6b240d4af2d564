"""Input sharding: keys, shard boundaries across files, clip columns, the parallel writers, and columns whose
type changes after the first rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from support import DATA, TALKING_HEADS

import v2d_vox
from v2d_vox import sharding
from v2d_vox.errors import ConfigError
from v2d_vox.sharding import TableSpec, read_shard, shard_keys, shard_tables

MEDIA = str(DATA / TALKING_HEADS[0])


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


# A column whose type changes after pyarrow has fixed it (a csv's first block, a json batch, another file)
# is text in every shard; no row is lost and the job goes on.
CHANGES = {"int then text": ([str(i) for i in range(11)], "oops"),
           "float then text": ([f"{i}.5" for i in range(11)], "unknown"),
           "int then float": ([str(i) for i in range(11)], "3.5")}


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
@pytest.mark.parametrize("change", CHANGES)
def test_a_csv_column_that_changes_type_after_the_first_block_is_text(tmp_path, monkeypatch, capsys, fmt, change):
    monkeypatch.setattr(sharding, "CSV_BLOCK", 100)  # a few rows per block
    first, odd = CHANGES[change]
    cells = [*first, odd]
    sep = "\t" if fmt == "tsv" else ","
    lines = [sep.join(("url", "id", "fold"))] + [sep.join((MEDIA, str(i), c)) for i, c in enumerate(cells)]
    assert len("\n".join(lines[:-1])) > 2 * 100  # the odd cell is blocks after the first
    (tmp_path / f"t.{fmt}").write_text("\n".join(lines) + "\n")
    summary = v2d_vox.download(str(tmp_path / f"t.{fmt}"), str(tmp_path / "o"), samples_per_shard=5, progress=False)
    assert summary["status"]["success"] == 12
    meta = [pq.read_table(tmp_path / "o" / f"{sid:05d}.parquet") for sid in range(3)]
    assert all(t.schema.field("fold").type == pa.string() for t in meta)
    assert all(t.schema.field("id").type == pa.int64() for t in meta)  # the columns that agree keep their type
    records = [r for t in meta for r in t.to_pylist()]
    assert [(r["id"], r["fold"]) for r in records] == list(enumerate(cells))  # each cell as written
    assert "column 'fold' changes type after the first block" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "_inputs" / "_done.json").read_text())["text_columns"] == ["fold"]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_json_column_that_changes_type_after_the_first_batch_is_text(tmp_path, monkeypatch, capsys, fmt):
    """Also within a batch. A key that first comes (or first holds values) later keeps its type, null before it,
    in every shard (``Table.from_pylist`` keeps only the first object's keys: the others were lost)."""
    monkeypatch.setattr(sharding, "BATCH_ROWS", 4)
    folds = [0, 1, 2, 3, 4, 5, 6.5, 7, None, "x", [1, 2], 11]
    rows = [{"url": MEDIA, "id": i, "fold": f, "score": None if i < 6 else i} for i, f in enumerate(folds)]
    rows[9]["late"] = True
    text = json.dumps(rows) if fmt == "json" else "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / f"t.{fmt}").write_text(text)
    summary = v2d_vox.download(str(tmp_path / f"t.{fmt}"), str(tmp_path / "o"), samples_per_shard=5, progress=False)
    assert summary["status"]["success"] == 12
    meta = [pq.read_table(tmp_path / "o" / f"{sid:05d}.parquet") for sid in range(3)]
    records = [r for t in meta for r in t.to_pylist()]
    assert [r["id"] for r in records] == list(range(12))
    assert [r["fold"] for r in records] == [None if f is None else f if isinstance(f, str) else json.dumps(f)
                                            for f in folds]  # each value's JSON text
    assert [r["late"] for r in records] == [None] * 9 + [True, None, None]
    assert [r["score"] for r in records] == [None] * 6 + list(range(6, 12))
    assert {t.schema.field("fold").type for t in meta} == {pa.string()}
    assert {t.schema.field("score").type for t in meta[1:]} == {pa.int64()}  # shard 0: none (worker infers)
    err = capsys.readouterr().err
    assert "column 'late' is absent from the first rows, bool here: kept as bool in every table" in err
    assert "column 'score' is empty in the first rows, int64 here" in err


def test_a_column_typed_otherwise_in_another_table_is_text_in_every_shard(tmp_path):
    pq.write_table(pa.table({"url": ["http://h/a0", "http://h/a1"], "fold": [1, 2]}), tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("url,fold\nhttp://h/b0,x\n")
    shards, rows = shard_tables([str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")], str(tmp_path / "out"),
                                TableSpec(samples_per_shard=2))
    assert (shards, rows) == (2, 3)
    assert [r["fold"] for sid in range(2) for r in read_shard(str(tmp_path / "out"), sid)] == ["1", "2", "x"]


def test_core_and_dropped_columns_that_change_type_stay_where_they_were(tmp_path, monkeypatch):
    """A caption column read as text is still only the caption; a column not kept is still not kept."""
    monkeypatch.setattr(sharding, "CSV_BLOCK", 64)
    lines = ["link,title,drop,id"] + [f"http://h/{i},{i},{i},{i}" for i in range(20)] + ["http://h/x,a word,x,20"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    spec = TableSpec(url_col="link", caption_col="title", save_additional_columns=["id"], samples_per_shard=8)
    assert shard_tables(str(tmp_path / "t.csv"), str(tmp_path / "out"), spec) == (3, 21)
    got = [row for sid in range(3) for row in read_shard(str(tmp_path / "out"), sid)]
    assert {tuple(r) for r in got} == {("key", "url", "caption", "id")}
    assert [r["caption"] for r in got] == [str(i) for i in range(20)] + ["a word"]
    assert [r["id"] for r in got] == list(range(21))


def test_a_column_missing_from_a_later_table_is_null_there(tmp_path):
    pq.write_table(pa.table({"url": ["http://h/a0", "http://h/a1"], "n": [1, 2]}), tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("url\nhttp://h/b0\n")
    shard_tables([str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")], str(tmp_path / "out"),
                 TableSpec(samples_per_shard=2))
    assert [r["n"] for sid in range(2) for r in read_shard(str(tmp_path / "out"), sid)] == [1, 2, None]
    assert ipc.open_file(str(tmp_path / "out" / "_inputs" / "00001.arrow")).schema.field("n").type == pa.int64()


def test_a_malformed_row_after_the_first_block_is_still_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sharding, "CSV_BLOCK", 64)
    (tmp_path / "t.csv").write_text("url,n\n" + "".join(f"http://h/{i},{i}\n" for i in range(20)) + "http://h,1,2\n")
    with pytest.raises(ConfigError, match="cannot read as csv: .*Expected 2 columns, got 3") as e:
        shard_tables(str(tmp_path / "t.csv"), str(tmp_path / "out"), TableSpec())
    assert "\n" not in str(e.value)


def test_a_late_column_that_also_changes_type_is_text(tmp_path, monkeypatch):
    """Absent from the first batch, then an int, then a word: text from the first row, no row lost."""
    monkeypatch.setattr(sharding, "BATCH_ROWS", 2)
    rows = [{"url": "http://h/a"}, {"url": "http://h/b"}, {"url": "http://h/c", "x": 1},
            {"url": "http://h/d", "x": "s"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert shard_tables(str(tmp_path / "t.jsonl"), str(tmp_path / "out"), TableSpec(samples_per_shard=3)) == (2, 4)
    assert [r["x"] for sid in range(2) for r in read_shard(str(tmp_path / "out"), sid)] == [None, None, "1", "s"]


def test_numbers_of_different_widths_stay_numbers(tmp_path):
    """int32 in one parquet, int64 in another: int64; ints then floats: float64 (text only when no number
    type holds both)."""
    pq.write_table(pa.table({"url": ["http://h/a"], "n": pa.array([1], pa.int32()), "f": [1]}),
                   tmp_path / "a.parquet")
    pq.write_table(pa.table({"url": ["http://h/b"], "n": pa.array([2], pa.int64()), "f": [2.5]}),
                   tmp_path / "b.parquet")
    out = tmp_path / "out"
    shard_tables([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], str(out), TableSpec(samples_per_shard=1))
    got = [r for sid in range(2) for r in read_shard(str(out), sid)]
    assert [(r["n"], r["f"]) for r in got] == [(1, 1.0), (2, 2.5)]
    for sid in range(2):
        schema = ipc.open_file(str(out / "_inputs" / f"{sid:05d}.arrow")).schema
        assert (schema.field("n").type, schema.field("f").type) == (pa.int64(), pa.float64())
