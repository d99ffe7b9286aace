"""Converters from each dataset's original download layout to MSD layout (one file per dataset)."""
