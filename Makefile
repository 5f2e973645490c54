# The two commands from the README:
#   make run   - set up a virtualenv, migrate, seed the demo fleet, serve on :8005 (embedded default)
#   make test  - set up everything the tests need and run every check and test
.PHONY: run test setup lint bench simulate

run:
	bash .ci/serve

test:
	bash .ci/test

setup:
	bash .ci/setup-env

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Fleet simulation: routing decision quality through the HTTP API (see tests/performance/).
# Extra options: make simulate ARGS="--quick" or ARGS="--profiles alt --json report.json".
simulate:
	.venv/bin/python -m tests.performance.fleet_simulation $(ARGS)

# Benchmarks (tests/performance/bench_*.py), one after the other, into one JSON report
# (var/bench/report.json, or BENCH_REPORT=path). Small runs: make bench ARGS="--quick".
bench:
	.venv/bin/python -m tests.performance.run_benchmarks $(ARGS)
