"""Slurm: one ``sbatch`` array job per call, one array task per group of ``shards_per_task`` shards.

Why a plain sbatch script and not submitit:
- submitit watches its jobs with ``sacct``, which needs Slurm accounting (slurmdbd); many small clusters
  (and ours in CI) run without it. This driver needs only ``sbatch``, ``scontrol`` and ``scancel``.
- The task is a readable shell script (kept as ``LOGS/JOBID.sbatch``) that runs
  ``python -m distributors.slurm_distributor OUTPUT SHARD...``: no pickles, so a task can be rerun by
  hand, and it rebuilds the Job from ``_job.json`` like every other distributor's workers.
- An array gives one job id for the run, ``%N`` throttling and ``scancel JOBID_TASK`` for free.

A job that leaves the queue has not necessarily succeeded (video2dataset only waits for the queue to
empty). A task has ended when its script wrote ``JOBID_TASK.exit`` or Slurm shows a final state; its
state (``scontrol show job``) and exit code then explain why a shard is missing. Whether a shard is
done is the runner's check (its stats exist), and the runner resubmits missing shards as a new array.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from tqdm import tqdm

from v2d_vox.config import Job
from v2d_vox.errors import ConfigError
from v2d_vox.layout import JOB, Layout

from . import multiprocessing_distributor

REPORTS_SAMPLES = False

# Job states in which a task may still write its shard; any other state is final.
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING",
          "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}


def run(job: Job, shard_ids: list[int], *, on_sample: Callable[[], None] | None = None,
        shards_per_task: int = 1, max_parallel: int | None = None, job_name: str = "v2d_vox",
        log_folder: str | None = None, venv: str | None = None, conda_env: str | None = None,
        setup: str | Sequence[str] = (), python: str | None = None, sbatch_args: Sequence[str] = (),
        poll_seconds: float = 5.0, **sbatch_options: Any) -> Iterator[tuple[int, str | None]]:
    """Submit one array job for ``shard_ids`` and yield each task's shards as the task ends.

    Any other keyword is an sbatch long option: ``partition``, ``account``, ``time``, ``cpus_per_task``,
    ``mem``, ``constraint``, ``exclude``, ``nodelist``, ``qos``, ``gres`` ... (``True`` gives a bare flag).
    ``venv`` (a path), ``conda_env`` (a name) or ``setup`` (raw shell lines) prepare the task's
    environment; the task runs ``python`` from it, else ``sys.executable``. It also inherits the
    submitting shell's environment and working directory, so relative paths mean the same there.
    """
    if shards_per_task < 1:
        raise ConfigError(f"shards_per_task must be >= 1, got {shards_per_task}")
    layout = Layout(job.output_folder)
    if log_folder is None and not isinstance(layout.fs, LocalFileSystem):
        raise ConfigError("the output folder is remote: pass distributor_args={'log_folder': <shared path>}")
    logs = Path(log_folder or f"{layout.root}/_slurm").absolute()
    logs.mkdir(parents=True, exist_ok=True)
    setup = [setup] if isinstance(setup, str) else list(setup)
    if venv:
        setup.insert(0, f"source {shlex.quote(venv)}/bin/activate")
    if conda_env:
        setup[:0] = ['eval "$(conda shell.bash hook)"', f"conda activate {shlex.quote(conda_env)}"]
    python = python or ("python" if venv or conda_env else sys.executable)
    options = {"job-name": job_name, "output": f"{logs}/%A_%a.out", "chdir": os.getcwd(),
               **{k.replace("_", "-"): v for k, v in sbatch_options.items() if v is not None}}
    groups = [shard_ids[i:i + shards_per_task] for i in range(0, len(shard_ids), shards_per_task)]
    array = f"0-{len(groups) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    script = _script(job.output_folder, groups, logs, {**options, "array": array}, sbatch_args, setup, python)
    job_id = _submit(script, logs)
    tqdm.write(f"slurm: array job {job_id}, {len(groups)} task(s) for {len(shard_ids)} shard(s); logs in {logs}")
    finished = False
    try:
        for i, why in _ended_tasks(job_id, len(groups), logs, poll_seconds):
            error = None if why.endswith("with exit code 0") else (
                f"task {job_id}_{i} (shards {groups[i]}) ended {why}; log {logs}/{job_id}_{i}.out")
            for sid in groups[i]:
                yield sid, error
        finished = True
    finally:
        if not finished:  # interrupted (Ctrl-C, or the caller stopped listening): leave nothing running
            subprocess.run(["scancel", job_id], check=False)


def _script(output_folder: str, groups: list[list[int]], logs: Path, options: dict[str, Any],
            sbatch_args: Sequence[str], setup: list[str], python: str) -> str:
    shards = " ".join(shlex.quote(" ".join(map(str, g))) for g in groups)
    return "\n".join([
        "#!/bin/bash",
        *(f"#SBATCH --{k}" + ("" if v is True else f"={v}") for k, v in options.items()),
        *(f"#SBATCH {a}" for a in sbatch_args),
        *setup,
        f"shards=({shards})",
        f"{shlex.quote(python)} -m distributors.slurm_distributor {shlex.quote(output_folder)} "
        "${shards[$SLURM_ARRAY_TASK_ID]}",
        f'echo $? > {shlex.quote(str(logs))}/"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.exit"',
        "",
    ])


def _submit(script: str, logs: Path) -> str:
    try:
        out = subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError("distributor='slurm' needs sbatch on PATH (run on a Slurm login node)") from None
    if out.returncode:
        raise ConfigError(f"sbatch refused the job: {out.stderr.strip()[:300]}")
    job_id = out.stdout.strip().split(";")[0]
    (logs / f"{job_id}.sbatch").write_text(script)
    return job_id


def _task_states(job_id: str) -> dict[str, tuple[str, str]] | None:
    """Array index (or index range, while pending) -> (JobState, ExitCode); {} once Slurm forgot the
    job (MinJobAge), None when scontrol did not answer (keep waiting)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    if out.returncode:
        return {} if "Invalid job id" in out.stderr else None
    records = (dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.stdout.splitlines())
    return {r.get("ArrayTaskId", "?"): (r["JobState"], r.get("ExitCode", "?")) for r in records}


def _ended_tasks(job_id: str, n_tasks: int, logs: Path, poll_seconds: float) -> Iterator[tuple[int, str]]:
    """(task index, how it ended) for each task of the array, as each ends."""
    pending, delay = set(range(n_tasks)), 0.2
    while pending:
        exits = {i for i in pending if (logs / f"{job_id}_{i}.exit").exists()}
        states = {} if exits == pending else _task_states(job_id)
        if states is not None:
            final = {int(k) for k, (state, _) in states.items() if k.isdigit() and state not in ACTIVE}
            forgotten = pending if not states else set()  # Slurm forgot the job: every task has ended
            for i in sorted(pending & (exits | final | forgotten)):
                pending.discard(i)
                yield i, _why(states, logs, job_id, i)
        if pending:
            time.sleep(delay)
            delay = min(poll_seconds, delay * 1.5)


def _why(states: dict[str, tuple[str, str]], logs: Path, job_id: str, index: int) -> str:
    exit_file = logs / f"{job_id}_{index}.exit"
    state, code = states.get(str(index), ("?", "?"))
    if exit_file.exists():
        return f"{state} with exit code {exit_file.read_text().strip()}"
    return f"{state} (ExitCode {code}) before the script finished: cancelled, timed out or killed"


def main(argv: list[str] | None = None) -> int:
    """The array task: ``python -m distributors.slurm_distributor OUTPUT_FOLDER SHARD_ID...``.

    Its shards run in ``SLURM_CPUS_PER_TASK`` processes (``cpus_per_task``; 1 when unset), each with the
    job's ``thread_count`` threads, so a task uses the cores Slurm gave it and no more processes."""
    output_folder, *shards = sys.argv[1:] if argv is None else argv
    layout = Layout(output_folder)
    job = Job.from_dict(layout.read_json(JOB))
    todo = [sid for sid in map(int, shards) if not layout.is_done(sid)]  # a requeued task skips finished ones
    processes = max(1, min(int(os.environ.get("SLURM_CPUS_PER_TASK") or 1), len(todo)))
    print(f"v2d_vox slurm task: shards {todo} in {processes} process(es) x {job.thread_count} thread(s)",
          flush=True)
    failed = 0
    for sid, error in multiprocessing_distributor.run(job, todo, processes_count=processes):
        if error:
            print(f"shard {sid}: {error}", file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
