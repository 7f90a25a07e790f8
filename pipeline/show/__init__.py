"""Show: what a finished job looks like to a person (compare, report, plots)."""
