"""Tools on top of the estimator: command line, training, evaluation, benchmarks, offline bags."""
