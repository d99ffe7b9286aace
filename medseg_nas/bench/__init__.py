"""The benchmark harness: peer networks, data outside a run, fit-and-score, and the statistics.

Scripts in scripts/ are thin command lines over it (none imports another script); nothing in the
product imports it.
"""
