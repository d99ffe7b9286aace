"""The architecture-search job around the strategies: the loop that asks a strategy for genomes,
runs them as trials (in-process or on Ray), stores every trial and writes the front artefacts.

The strategies themselves (SaMEA, DMLS, random, NSGA-II) live in `medseg_nas.search`, which
knows nothing about training; this package is where search meets data and training.
"""
