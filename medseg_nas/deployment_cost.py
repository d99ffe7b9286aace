"""What a network costs the user who deploys it: MACs, peak activation memory and CPU latency.

Parameters are a poor proxy for inference cost: the EMONAS cell runs its convolutions at full
resolution, so per parameter it costs many times the FLOPs of a plain U-Net. Three measures sit
beside the parameter count of every trial (and can be the search's f2, `objectives.cost`):

- MACs: multiply-accumulates of one forward pass of one patch (batch 1), counted by
  `torch.utils.flop_counter.FlopCounterMode` on the meta device (shapes only, ~ms, exact and
  deterministic). The counter counts convolutions (transposed ones included) and matrix
  products, as FLOP counters conventionally do; normalisation, activations, bias and additions
  are not counted (they are < 2 % of a conv net's MACs). tests/test_deployment_cost.py checks it
  against hand counts of a conv3d, a pseudo-3D op and a transposed conv.
- Peak activation memory: the most bytes held at once by tensors the forward pass creates
  (outputs and temporaries of every op; the input and the weights are not counted), followed
  through a TorchDispatchMode on the meta device. Backend workspaces (oneDNN scratch) are not
  seen; this is the inference pass, not training.
- Latency: median wall-clock of `Predictor`'s real path (the CPU layout, MONAI sliding window
  with the predictor's window batch and overlap, softmax) over one preprocessed volume of the
  dataset's median shape, after warm-up runs, with the intra-op threads recorded. Weights do not
  change the cost of a dense network, so the network is built with a fixed seed under a forked
  RNG (the caller's random stream is untouched).
"""

from __future__ import annotations

import statistics
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from medseg_nas.results import COSTS


@dataclass
class DeploymentCost:
    """The costs of one network; `latency_ms` is None when it was not measured."""

    macs: int
    act_mem_mb: float
    latency_ms: float | None = None
    latency_threads: int | None = None
    latency_runs: int = 0
    volume_shape: list[int] = field(default_factory=list)
    seconds: float = 0.0  # what measuring all of it took

    def to_dict(self) -> dict:
        return asdict(self)


def count_macs(network: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of a B×C×X×Y×Z input (`network` on any device;
    counted on a meta copy of the input, so nothing is computed when the network is on meta)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(iter(network.parameters()), torch.empty(0)).device
    x = torch.empty(tuple(int(s) for s in input_shape), device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(x)
    return int(counter.get_total_flops() // 2)


class _LiveBytes(TorchDispatchMode):
    """Bytes held by the storages ops create, live and at peak (a storage is freed when its
    Python object dies: storages keep one Python object for their whole life)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in self._sizes:
                continue  # a view or an in-place result: already counted
            self._sizes[key] = int(storage.nbytes())
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)
        return out


def peak_activation_bytes(network: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """Peak bytes of the tensors a forward pass of a B×C×X×Y×Z input holds at once (see module)."""
    device = next(iter(network.parameters()), torch.empty(0)).device
    x = torch.empty(tuple(int(s) for s in input_shape), device=device)
    with torch.no_grad():
        mode = _LiveBytes()
        with mode:
            out = network(x)
        del out
    return int(mode.peak)


def measure_latency(network: torch.nn.Module, in_channels: int, volume_shape: Sequence[int], patch: Sequence[int],
                    runs: int = 5, warmup: int = 1, sw_batch_size: int = 2, overlap: float = 0.25,
                    predictor_layout: bool = True) -> tuple[float, int]:
    """(median ms, intra-op threads) of the predictor's CPU path over one volume of `volume_shape`
    (`predictor_layout` False: `network` is called as it is, e.g. an onnxruntime session wrapper)."""
    from medseg_nas.inference import Predictor
    from medseg_nas.sliding_window import sliding_window

    net = Predictor.fast_network(network, torch.device("cpu")) if predictor_layout else network
    image = torch.zeros((int(in_channels), *[int(s) for s in volume_shape]))
    times = []
    with torch.inference_mode():
        for k in range(int(warmup) + int(runs)):
            t = time.perf_counter()
            sliding_window(net, image, patch, sw_batch_size, overlap, "cpu", output_device="cpu", softmax=True)
            if k >= warmup:
                times.append((time.perf_counter() - t) * 1000.0)
    return float(statistics.median(times)), int(torch.get_num_threads())


def network_cost(build, in_channels: int, patch: Sequence[int], volume_shape: Sequence[int] | None = None,
                 latency_runs: int = 5, sw_batch_size: int = 2, overlap: float = 0.25) -> DeploymentCost:
    """The costs of the network `build()` returns (called under the meta device for MACs and
    memory, then with seed 0 under a forked RNG on the CPU for latency); `volume_shape` None or
    `latency_runs` 0 skips the latency."""
    t0 = time.perf_counter()
    shape = (1, int(in_channels), *[int(p) for p in patch])
    with torch.device("meta"):
        meta = build()
    macs = count_macs(meta, shape)
    mem = peak_activation_bytes(meta, shape)
    cost = DeploymentCost(macs=macs, act_mem_mb=round(mem / 2**20, 3))
    if volume_shape and latency_runs > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = build()
        cost.latency_ms, cost.latency_threads = measure_latency(
            net, in_channels, volume_shape, patch, runs=latency_runs, sw_batch_size=sw_batch_size, overlap=overlap)
        cost.latency_ms = round(cost.latency_ms, 3)
        cost.latency_runs = int(latency_runs)
        cost.volume_shape = [int(s) for s in volume_shape]
    cost.seconds = round(time.perf_counter() - t0, 3)
    return cost


def genome_cost(genome, network, patch: Sequence[int], volume_shape: Sequence[int] | None = None,
                latency_runs: int = 5) -> DeploymentCost:
    """`network_cost` of the search-space network of `genome` under `network` (a space.NetworkSpec):
    the trial worker's and the runner's one way to cost a genome."""
    return network_cost(lambda: network.build(genome), network.in_channels, patch, volume_shape, latency_runs)


__all__ = ["genome_cost", "COSTS", "DeploymentCost", "count_macs", "measure_latency", "network_cost",
           "peak_activation_bytes"]
