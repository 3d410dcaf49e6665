"""What the benchmarks share (servers, clips, /proc sampling, scoring, plots): no command
lines here, so tests import these modules and never a benchmark script."""
