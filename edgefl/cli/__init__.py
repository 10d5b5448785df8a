"""The `edgefl` command line: a thin adapter over library calls."""
