"""The best genomes published for EMONAS-Net (Baldeon-Calisto & Lai-Yuen, AIM 119, 2021).

Transcribed from the paper's table of best hyperparameter vectors per dataset; its "input
tensor" is the cell input (0).
"""

from medseg_nas.space.genome import Genome

PUBLISHED_GENOMES: dict[str, Genome] = {
    "prostate": Genome(inputs=(1, 0, 2), ops=("p3d_3", "conv3d_3", "conv2d_5", "conv3d_1"), n_c=3, n_f=5, lr=3e-4),
    "hippocampus": Genome(inputs=(0, 1, 1), ops=("conv3d_3", "p3d_3", "p3d_3", "conv2d_5"), n_c=3, n_f=5, lr=4e-4),
    "cardiac": Genome(inputs=(0, 1, 3), ops=("conv2d_3", "p3d_3", "conv3d_1", "conv2d_7"), n_c=3, n_f=5, lr=4e-4),
}

# Published parameter counts and test results, for plots and benchmark tables.
PUBLISHED_PARAMS = {"prostate": 5.9e6, "hippocampus": 7.0e6, "cardiac": 7.1e6}
PUBLISHED_DICE = {
    "prostate": {"whole": 0.9101},
    "hippocampus": {"anterior": 0.8908, "posterior": 0.8754},
    "cardiac": {"RV": 0.9124, "LV": 0.9259, "MYO": 0.8759},
}
