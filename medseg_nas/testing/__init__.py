"""What the tests and the smoke benchmarks share, shipped in the package so that scripts, worker
processes and subprocesses import it by name (no `sys.path` edits):

- `analytic`: a cheap 2-objective problem over real genomes (strategy tests, `bench_search --mode analytic`);
- `toy`: an in-memory phantom DataBundle the Trainer can fit in seconds;
- `fake_trials`: torch-free trial functions (fast, failing, flaky, gated) for executor/runner tests;
- `fake_search`: a tiny seeded strategy, a whole fake search, a live store's finished-trial count;
- `fixtures`: NIfTI volumes and random-network checkpoints for the stage tests.
"""
