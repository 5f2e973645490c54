# The two commands from the README:
#   make run   - set up a virtualenv, migrate, seed the demo fleet, serve on :8005 (embedded default)
#   make test  - set up everything the tests need and run every check and test
.PHONY: run test setup lint bench

run:
	bash .ci/serve

test:
	bash .ci/test

setup:
	bash .ci/setup-env

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
