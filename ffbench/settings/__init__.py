"""What a measurement is, before anything runs: one cell's settings and the table that
describes each of them, the grammar of ranges, the GPUs a prediction can target. Torch-free
and algorithm-free: nothing here imports an algorithm (ffbench.algorithms.resolve completes
a cell with its algorithm's defaults and checks its options)."""
