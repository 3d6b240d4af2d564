"""The CLI is built from the API's typed parameters: values keep their types (a one-element list stays
a list, "2024" stays a string), help comes from the annotations, bad values fail in one line."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import pytest
import webdataset as wds

import v2d_vox
from v2d_vox.cli import COMMANDS, build_parser, main
from v2d_vox.options import Help, documented, help_of

DATA = Path(__file__).parent / "data"
MEDIA = DATA / "pc-avs__Input_00010.mp4"


def parse(*argv: str) -> dict[str, typing.Any]:
    return vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("columns", [["identity"], ["identity", "speaker"]])
def test_save_additional_columns_keeps_each_named_column(tmp_path, columns):
    table = tmp_path / "in.csv"
    table.write_text(f"url,identity,speaker,other\n{MEDIA},id07,spk3,x\n")
    out = tmp_path / "out"
    rc = main(["download", str(table), "--output_folder", str(out), "--config", "default",
               "--save_additional_columns", *columns, "--processes_count", "1", "--thread_count", "1",
               "--no-progress"])
    [row] = pq.read_table(out / "00000.parquet").to_pylist()
    assert rc == 0 and row["status"] == "success"
    assert {c: row.get(c) for c in ("identity", "speaker", "other")} == {
        "identity": "id07", "speaker": "spk3" if "speaker" in columns else None, "other": None}


def test_scan_report_folder_stays_a_string(tmp_path, monkeypatch):
    shards = tmp_path / "shards"
    shards.mkdir()
    with wds.TarWriter(str(shards / "00000.tar")) as tar:
        tar.write({"__key__": "a", "mp4": MEDIA.read_bytes(), "json": b"{}"})
    monkeypatch.chdir(tmp_path)
    assert parse("scan", "shards", "--report_folder", "2024")["report_folder"] == "2024"
    assert main(["scan", "shards", "--report_folder", "2024", "--processes_count", "1", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "2024" / "summary.json").read_text())
    assert (summary["samples"], summary["bad_samples"]) == (1, 0)


@pytest.mark.parametrize(("argv", "name", "value"), [
    (["download", "a.csv"], "url_list", "a.csv"),  # str | list[str]: one value is a str ...
    (["download", "a.csv", "b.csv"], "url_list", ["a.csv", "b.csv"]),  # ... several a list
    (["download", "a", "--save_additional_columns", "1"], "save_additional_columns", ["1"]),
    (["download", "a", "--save_additional_columns", "none"], "save_additional_columns", None),
    (["download", "a", "--caption_col", "null"], "caption_col", None),
    (["download", "a", "--caption_col", "123"], "caption_col", "123"),
    (["download", "a", "--user_agent", "true"], "user_agent", "true"),
    (["download", "a", "--processes_count", "4"], "processes_count", 4),
    (["download", "a", "--processes_count", "None"], "processes_count", None),
    (["download", "a", "--timeout", "2"], "timeout", 2.0),
    (["download", "a", "--config", "voxceleb"], "config", "voxceleb"),
    (["download", "a", "--config", '{"subsamplers": []}'], "config", {"subsamplers": []}),
    (["download", "a", "--distributor_args", '{"partitions": 3}'], "distributor_args", {"partitions": 3}),
    (["download", "a"], "distributor_args", None),
    (["reprocess", "in", "--metadata_only"], "metadata_only", True),
    (["reprocess", "in", "--no-progress"], "progress", False),
    (["scan", "s", "--av_tolerance", "null"], "av_tolerance", None),
    (["scan", "s", "--av_tolerance", "0.5"], "av_tolerance", 0.5),
])
def test_values_parse_as_their_declared_type(argv, name, value):
    assert parse(*argv)[name] == value


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"v2d-vox {v2d_vox.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_parameters_help(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: each help text appears whole
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    fn = getattr(v2d_vox, command)
    hints = typing.get_type_hints(fn, include_extras=True)
    for name in inspect.signature(fn).parameters:
        assert help_of(hints[name]).text in out, name
        assert f"    {name}: " in fn.__doc__  # help(v2d_vox.<command>) documents it too


@pytest.mark.parametrize(("argv", "line"), [
    (["download", "a", "--distributor_args", "{bad"],
     "v2d-vox download: error: argument --distributor_args: invalid JSON '{bad': "),
    (["download", "a", "--distributor_args", "[1]"],
     "v2d-vox download: error: argument --distributor_args: expected a JSON object, got '[1]'"),
    (["download", "a", "--thread_count", "eight"],
     "v2d-vox download: error: argument --thread_count: invalid int value: 'eight'"),
    (["scan"], "v2d-vox scan: error: the following arguments are required: shards"),
    (["reprocess", "a", "--output_format", "zip"], "v2d-vox reprocess: error: argument --output_format: invalid "
                                                   "choice: 'zip'"),
])
def test_bad_value_fails_in_one_line_naming_the_option(argv, line, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(line)


def test_api_error_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["download", str(tmp_path / "missing.csv"), "--output_folder", str(tmp_path / "out")])
    assert rc == 2 and capsys.readouterr().err.startswith("v2d-vox: error: input table")


def test_documented_needs_help_for_every_parameter():
    def f(a: Annotated[int, Help("an a")], b: str = "x") -> None:
        """Do f."""

    with pytest.raises(TypeError, match="'b' needs an Annotated"):
        documented(f)
