"""The EMONAS-Net search space: genomes, ops, cells, networks and their sizes."""

from medseg_nas.space.genome import ENCODING_SIZE, FULL_SPACE, OPS, VARIABLES, Genome, SearchSpace
from medseg_nas.space.network import CELLS, EMONASNet, NetworkSpec, build_network, count_parameters
from medseg_nas.space.network_emonas import EmonasNet
from medseg_nas.space.plan import MAX_LEVELS, NetworkPlan, plan_from_spacing
from medseg_nas.space.published import PUBLISHED_DICE, PUBLISHED_GENOMES, PUBLISHED_PARAMS

__all__ = [
    "ENCODING_SIZE",
    "FULL_SPACE",
    "OPS",
    "VARIABLES",
    "Genome",
    "SearchSpace",
    "CELLS",
    "EMONASNet",
    "EmonasNet",
    "build_network",
    "count_parameters",
    "NetworkSpec",
    "MAX_LEVELS",
    "NetworkPlan",
    "plan_from_spacing",
    "PUBLISHED_DICE",
    "PUBLISHED_GENOMES",
    "PUBLISHED_PARAMS",
]
