"""f2 of genomes as the search needs it: before training (strategies screen and bound with it)
and after (what a trial measured), for the cost `objectives.cost` names.

A trained genome's f2 is the one its trial's worker measured (kept in trials.sqlite and read back
on resume); an untrained one's is computed here, in the search process: parameters and MACs are
exact (meta device, ~ms), a latency is measured on this machine (on a cluster, possibly not the
machine that will train the genome).
"""

from __future__ import annotations

import math

from medseg_nas.errors import SearchError
from medseg_nas.results import TrialResult
from medseg_nas.space.genome import Genome
from medseg_nas.space.network import NetworkSpec


class GenomeCosts:
    def __init__(self, cfg, ctx, told: dict[str, float]) -> None:
        """`ctx`: the runner's SearchContext; `told`: f2 by genome key of the trials already done."""
        self.cfg, self.ctx = cfg, ctx
        self.kind = cfg.objectives.cost
        if self.kind != "params" and ctx.plan is None:
            raise SearchError(f"objectives.cost={self.kind} needs the data plan (patch, median volume); "
                              "this search has no data (data.root is empty)")
        self._f2: dict[str, float] = dict(told)
        self.network = NetworkSpec(ctx.in_channels, ctx.n_classes, ctx.network_plan, cfg.space.cell)

    def n_params(self, genome: Genome) -> int:
        return self.network.n_params(genome)

    def measure(self, genome: Genome, latency: bool):
        """The genome's DeploymentCost in this process (MACs and memory; the CPU latency if asked)."""
        from medseg_nas.deployment_cost import genome_cost

        plan = self.ctx.plan
        return genome_cost(genome, self.network, plan.patch_size, plan.median_shape if latency else None,
                           self.cfg.objectives.latency_runs)

    def f2_of(self, genome: Genome) -> float:
        key = genome.key()
        if key not in self._f2:
            if self.kind == "params":
                value = float(self.n_params(genome))
            else:
                cost = self.measure(genome, latency=self.kind == "latency")
                value = float(cost.macs if self.kind == "macs" else cost.latency_ms)
            self._f2[key] = math.log(value)
        return self._f2[key]

    def told(self, genome: Genome, f2: float) -> None:
        """A trial's measured f2 replaces any estimate made here."""
        self._f2[genome.key()] = float(f2)

    def complete(self, result: TrialResult, genome: Genome) -> None:
        """Fill the exact costs a trial function did not record (test and benchmark trials)."""
        if not result.ok:
            return
        if result.n_params is None:
            result.n_params = self.n_params(genome)
        if result.macs is None and self.ctx.plan is not None:
            cost = self.measure(genome, latency=False)
            result.macs, result.act_mem_mb = cost.macs, cost.act_mem_mb

    @staticmethod
    def describe(result: TrialResult) -> str:
        macs = f" GMACs={result.macs / 1e9:.2f}" if result.macs else ""
        return f"params={result.n_params:,}" + macs + (f" latency={result.latency_ms:.0f}ms" if result.latency_ms else "")
