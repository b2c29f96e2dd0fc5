"""A sweep of cells: what a command runs (plan), the grid (spec), the results folder
(folder), how a cell ended as its row (outcomes), and the run itself (run)."""
