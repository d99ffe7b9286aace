"""Where trials run: `TrialSpec` in, `TrialResult` out, streamed back as trials finish.

An executor knows nothing about search: the runner `submit`s specs (at most `capacity` in
flight) and `wait`s for whichever finish first. A trial function `trial_fn(spec) -> TrialResult`
does the work; it must be a module-level function so it can be sent to other processes.

- `LocalExecutor(trial_fn)`: in this process, one trial at a time (CPU or the configured GPU).
  `LocalExecutor(trial_fn, workers=N)` with N > 1 runs N worker processes instead, worker i
  pinned to visible GPU i (round robin) through `CUDA_VISIBLE_DEVICES`, or on the CPU when no
  GPU is visible.
- `RayExecutor(trial_fn, address=...)`: `ray.init(address=address or None)`; each trial is a
  Ray task asking for `gpus_per_trial` GPUs when the cluster has GPUs, else `cpus_per_trial`
  CPUs.

A trial that raises becomes a failed result carrying the error (the search goes on). A worker
that dies in the middle of a trial (segfault, OOM-killer, lost node) has the trial retried once
on a fresh worker; a second death marks it failed.
"""

from __future__ import annotations

import os
import queue
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from medseg_nas.errors import MedsegError
from medseg_nas.results import TrialResult

TrialFn = Callable[["TrialSpec"], TrialResult]


@dataclass
class TrialSpec:
    """Everything a worker needs to run one trial; plain data, so it pickles anywhere."""

    trial_id: int
    genome: str  # Genome.to_json()
    seed: int
    run_dir: str
    config: dict  # the resolved Config as a dict (medseg_nas.config.config_to_dict)
    context: dict = field(default_factory=dict)  # e.g. {"split": ..., "plan": ...} from the runner
    log_dir: str | None = None  # TensorBoard dir of this trial
    device: str | None = None  # set by an executor that pins a device; None: config's train.device
    # successive halving (nas/halving.py): train until epoch `until` of train.epochs at rung
    # `rung`, going on from the state in `state_in` (None: from scratch), saving it to `state_out`
    rung: int = 0
    until: int | None = None
    state_in: str | None = None
    state_out: str | None = None

    def genome_obj(self):
        from medseg_nas.space.genome import Genome

        return Genome.from_json(self.genome)


@dataclass
class Completed:
    """A finished trial as an executor hands it back."""

    spec: TrialSpec
    result: TrialResult
    host: str
    attempts: int = 1


def execute(trial_fn: TrialFn, spec: TrialSpec) -> tuple[TrialResult, str]:
    """Run one trial, turning an exception into a failed result. Returns (result, host).

    The weights are dropped: the search does not need them and they can be large to ship.
    """
    t0 = time.time()
    host = socket.gethostname()
    try:
        result = trial_fn(spec)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a crashing trial must not end the search
        tb = traceback.format_exc(limit=8)
        result = TrialResult.failed(f"{type(exc).__name__}: {exc}\n{tb}", time.time() - t0)
    if not isinstance(result, TrialResult):
        what = "None" if result is None else f"a {type(result).__name__}, not a TrialResult"
        result = TrialResult.failed(f"trial function returned {what}", time.time() - t0)
    result.state_dict = None
    return result, host


class Executor:
    """The executor interface the runner uses."""

    capacity: int = 1  # trials in flight at once

    def submit(self, spec: TrialSpec) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> list[Completed]:
        """Block until at least one submitted trial finishes (or `timeout` s); those finished."""
        raise NotImplementedError

    @property
    def in_flight(self) -> int:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


# -- local -----------------------------------------------------------------------------------


class LocalExecutor(Executor):
    """Trials in this process one at a time, or in `workers` > 1 worker processes."""

    def __init__(self, trial_fn: TrialFn, workers: int = 1, gpus: list[int] | None = None) -> None:
        self.trial_fn = trial_fn
        self._queue: list[TrialSpec] = []
        self._pool: _ProcessPool | None = None
        if workers > 1:
            self._pool = _ProcessPool(trial_fn, workers, gpus if gpus is not None else [])
            self.capacity = workers
        else:
            self.capacity = 1

    @property
    def in_flight(self) -> int:
        return self._pool.in_flight if self._pool else len(self._queue)

    def submit(self, spec: TrialSpec) -> None:
        if self._pool:
            self._pool.submit(spec)
        else:
            self._queue.append(spec)

    def wait(self, timeout: float | None = None) -> list[Completed]:
        if self._pool:
            return self._pool.wait(timeout)
        if not self._queue:
            return []
        spec = self._queue.pop(0)
        result, host = execute(self.trial_fn, spec)
        return [Completed(spec, result, host)]

    def shutdown(self) -> None:
        self._queue.clear()
        if self._pool:
            self._pool.shutdown()
            self._pool = None

    def describe(self) -> str:
        if self._pool:
            return f"local, {self.capacity} worker processes" + (f" on GPUs {self._pool.gpus}" if self._pool.gpus else " (CPU)")
        return "local, in-process"


def _worker_main(trial_fn: TrialFn, tasks, results, index: int) -> None:
    """Body of one worker process: run specs from `tasks` until a None arrives."""
    try:
        while True:
            item = tasks.get()
            if item is None:
                return
            spec = item
            result, host = execute(trial_fn, spec)
            results.put((index, spec.trial_id, result, host))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent cleans up
        return


class _ProcessPool:
    """Fixed worker processes (spawned, so CUDA is safe), one task each at a time."""

    def __init__(self, trial_fn: TrialFn, workers: int, gpus: list[int]) -> None:
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self.trial_fn = trial_fn
        self.gpus = list(gpus)
        self._results = self._ctx.Queue()
        self._workers: list[dict] = []
        for i in range(workers):
            self._workers.append({"proc": None, "tasks": None, "spec": None, "attempts": 0})
            self._start(i)

    def _start(self, i: int) -> None:
        w = self._workers[i]
        w["tasks"] = self._ctx.Queue()
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self.gpus:  # the child inherits the environment at start: pin its GPU
            os.environ["CUDA_VISIBLE_DEVICES"] = str(self.gpus[i % len(self.gpus)])
        try:
            proc = self._ctx.Process(target=_worker_main, args=(self.trial_fn, w["tasks"], self._results, i), daemon=True)
            proc.start()
        finally:
            if self.gpus:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        w["proc"] = proc

    @property
    def in_flight(self) -> int:
        return sum(w["spec"] is not None for w in self._workers)

    def submit(self, spec: TrialSpec) -> None:
        for w in self._workers:
            if w["spec"] is None:
                if self.gpus:
                    spec.device = "cuda:0"  # the only GPU the worker sees
                w["spec"], w["attempts"] = spec, 1
                w["tasks"].put(spec)
                return
        raise RuntimeError("all workers are busy: submit at most `capacity` trials")

    def wait(self, timeout: float | None = None) -> list[Completed]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.in_flight:
            done = self._drain(0.2)
            if done:
                return done
            done = self._reap_dead()
            if done:
                return done
            if deadline is not None and time.monotonic() > deadline:
                return []
        return []

    def _drain(self, block_s: float) -> list[Completed]:
        out = []
        try:
            item = self._results.get(timeout=block_s)
        except queue.Empty:
            return out
        while True:
            index, trial_id, result, host = item
            w = self._workers[index]
            if w["spec"] is not None and w["spec"].trial_id == trial_id:
                out.append(Completed(w["spec"], result, host, w["attempts"]))
                w["spec"] = None
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return out

    def _reap_dead(self) -> list[Completed]:
        out = []
        for i, w in enumerate(self._workers):
            if w["proc"].is_alive():
                continue
            code = w["proc"].exitcode
            spec, attempts = w["spec"], w["attempts"]
            # a result put just before dying may still be in the queue
            late = self._drain(0.1)
            out.extend(late)
            self._start(i)
            if spec is None or any(c.spec is spec for c in late):
                continue
            if attempts < 2:
                w["spec"], w["attempts"] = spec, attempts + 1
                w["tasks"].put(spec)
            else:
                w["spec"] = None
                out.append(
                    Completed(spec, TrialResult.failed(f"WorkerDied: worker process died (exit code {code}) on both attempts"), socket.gethostname(), attempts)
                )
        return out

    def shutdown(self) -> None:
        for w in self._workers:
            try:
                w["tasks"].put(None)
            except Exception:
                pass
        deadline = time.monotonic() + 5
        for w in self._workers:
            proc = w["proc"]
            if w["spec"] is not None:  # busy: do not wait for a trial nobody will read
                proc.terminate()
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        self._workers = []


# -- ray -------------------------------------------------------------------------------------


def _ray_task(trial_fn: TrialFn, spec: TrialSpec) -> tuple[TrialResult, str]:
    return execute(trial_fn, spec)


def import_ray():
    try:
        import ray  # type: ignore
    except ImportError:
        raise MedsegError(
            "executor.kind=ray needs the 'ray' package: pip install 'medseg-nas[ray]' (or pip install 'ray[default]>=2.9')"
        ) from None
    return ray


class RayExecutor(Executor):
    """One Ray task per trial; results come back in the order trials finish."""

    def __init__(
        self,
        trial_fn: TrialFn,
        address: str = "",
        workers: int = 1,
        gpus_per_trial: float = 1.0,
        cpus_per_trial: float = 1.0,
        max_retries: int = 1,
        init_kwargs: dict | None = None,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": True}
            kwargs.update(init_kwargs or {})
            try:
                ray.init(address=address or None, **kwargs)
            except ConnectionError as exc:
                raise MedsegError(f"executor.address={address!r}: cannot connect to the Ray cluster: {exc}") from None
            self._owns = True
        resources = ray.cluster_resources()
        self.n_gpus = float(resources.get("GPU", 0.0))
        self.n_cpus = float(resources.get("CPU", 1.0))
        if self.n_gpus > 0:
            options = {"num_gpus": gpus_per_trial, "num_cpus": cpus_per_trial}
            fit = int(self.n_gpus // max(gpus_per_trial, 1e-9))
        else:
            options = {"num_cpus": cpus_per_trial}
            fit = int(self.n_cpus // max(cpus_per_trial, 1e-9))
        # workers = 1 (the default) means "as many as the cluster fits"
        self.capacity = int(workers) if workers > 1 else max(1, fit)
        self.options = options
        self._remote = ray.remote(_ray_task).options(max_retries=max_retries, retry_exceptions=False, **options)
        self._fn_ref = ray.put(trial_fn)
        self._refs: dict[Any, TrialSpec] = {}
        self.max_retries = max_retries

    @property
    def in_flight(self) -> int:
        return len(self._refs)

    def submit(self, spec: TrialSpec) -> None:
        ref = self._remote.remote(self._fn_ref, spec)
        self._refs[ref] = spec

    def wait(self, timeout: float | None = None) -> list[Completed]:
        if not self._refs:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # collect everything else already finished too
            more, _ = ray.wait([r for r in self._refs if r not in ready], num_returns=len(self._refs) - len(ready), timeout=0)
            ready = list(ready) + list(more)
        out = []
        for ref in ready:
            spec = self._refs.pop(ref)
            try:
                result, host = ray.get(ref)
                out.append(Completed(spec, result, host))
            except ray.exceptions.RayError as exc:  # worker died on every attempt, node lost, ...
                kind = type(exc).__name__
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
                out.append(
                    Completed(
                        spec,
                        TrialResult.failed(f"{kind}: Ray worker died on all {self.max_retries + 1} attempts ({msg})"),
                        "?",
                        self.max_retries + 1,
                    )
                )
        return out

    def shutdown(self) -> None:
        ray = self._ray
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        self._refs.clear()
        if self._owns and ray.is_initialized():
            ray.shutdown()

    def describe(self) -> str:
        res = f"{self.n_gpus:g} GPUs" if self.n_gpus else f"{self.n_cpus:g} CPUs"
        return f"ray ({res}, {self.capacity} trials in flight, {self.options})"


# -- factory ---------------------------------------------------------------------------------


def visible_gpus() -> list[int]:
    try:
        import torch

        return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    except Exception:
        return []


def make_executor(exec_cfg, trial_fn: TrialFn, train_device: str = "auto") -> Executor:
    """The executor `exec_cfg` (a config.ExecutorConfig) asks for.

    local: `workers` <= 1 runs in-process; `workers` = 0 with several visible GPUs (and a
    train.device of auto/cuda) runs one worker process per GPU; `workers` > 1 runs that many
    worker processes, pinned to the visible GPUs round robin (or on the CPU).
    """
    if exec_cfg.kind == "ray":
        return RayExecutor(
            trial_fn,
            address=exec_cfg.address,
            workers=exec_cfg.workers,
            gpus_per_trial=exec_cfg.gpus_per_trial,
            cpus_per_trial=exec_cfg.cpus_per_trial,
        )
    if exec_cfg.kind != "local":
        raise MedsegError(f"key 'executor.kind': unknown executor {exec_cfg.kind!r} (local | ray)")
    gpus = visible_gpus() if train_device in ("auto", "cuda") else []
    workers = exec_cfg.workers
    if workers == 0:
        workers = len(gpus) if len(gpus) > 1 else 1
    return LocalExecutor(trial_fn, workers=workers, gpus=gpus)
