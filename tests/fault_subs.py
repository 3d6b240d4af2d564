"""Test-only subsamplers that make a shard slow or crash it, referred to by the distributor tests as
``"tests.fault_subs:Sleep"``: a Slurm task or a Spark worker imports them from the repo root."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

from v2d_vox.subsampler import Subsampler


class InjectedCrash(BaseException):
    """Escapes the worker's per-sample error handling (it catches Exception): the whole shard fails."""


@dataclass
class Sleep(Subsampler):
    """Sleeps on samples whose url contains `url_contains` while the file `switch` exists; writes its pid to
    `pid_file` (if given) first, so a test knows which process (which Spark worker) holds the shard."""

    name: ClassVar[str] = "test_sleep"
    stage: ClassVar[str] = "meta"
    url_contains: str = ""
    switch: str = ""
    seconds: float = 60.0
    pid_file: str = ""

    def check(self, sample) -> None:
        if self.url_contains in sample.meta["url"] and os.path.exists(self.switch):
            if self.pid_file:
                with open(self.pid_file, "w") as f:
                    f.write(str(os.getpid()))
            time.sleep(self.seconds)


@dataclass
class Crash(Subsampler):
    """Crashes the shard holding `url_contains` on its first `times` attempts, counted in `counter`."""

    name: ClassVar[str] = "test_crash"
    stage: ClassVar[str] = "meta"
    url_contains: str = ""
    counter: str = ""
    times: int = 1

    def check(self, sample) -> None:
        if self.url_contains not in sample.meta["url"]:
            return
        with open(self.counter, "a+") as f:
            f.seek(0)
            attempts = len(f.read())
            f.write("x")
        if attempts < self.times:
            raise InjectedCrash(f"injected crash {attempts + 1}/{self.times}")


@dataclass
class Rendezvous(Subsampler):
    """Each process writes its pid under `folder/<Slurm task>/` and waits (at most `seconds`) until `count`
    processes of its task have: with fewer processes than shards running at once, the task's pid files
    stay fewer than `count`, which the test then sees."""

    name: ClassVar[str] = "test_rendezvous"
    stage: ClassVar[str] = "meta"
    folder: str = ""
    count: int = 2
    seconds: float = 60.0

    def check(self, sample) -> None:
        task = f"{os.environ.get('SLURM_ARRAY_JOB_ID', 'local')}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
        here = os.path.join(self.folder, task)
        os.makedirs(here, exist_ok=True)
        open(os.path.join(here, str(os.getpid())), "w").close()
        deadline = time.monotonic() + self.seconds
        while len(os.listdir(here)) < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
