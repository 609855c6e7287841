"""Benchmarks: this machine's raw limits, the relay's own figures and the whole
platform's, measured in one run and printed side by side with issue 16's goals
(``make bench``); n8n beside Stepline on the same shapes (``make bench-peers``). Not
tests: they print numbers and never fail a build on a timing. Results go to
``bench/results/`` as JSON."""
