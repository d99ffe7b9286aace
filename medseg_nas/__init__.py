"""medseg-nas: multi-objective NAS for small, accurate 3D medical segmentation networks."""

__version__ = "0.1.0"
