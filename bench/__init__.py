"""Benchmarks: this machine's raw limits and the relay's own figures, measured in one run
and printed side by side (``make bench``). Not tests: they print numbers and never fail
a build on a timing. Results go to ``bench/results/`` as JSON."""
