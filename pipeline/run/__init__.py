"""Run: carries out a plan (runner, executors, actor pool, Ray session, workers,
work directory, progress, batches)."""
