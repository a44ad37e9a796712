# Shortcuts for the README's two commands.
.PHONY: run test bench
run:
	scripts/run.sh
test:
	scripts/test.sh
bench:
	.venv/bin/python -m tests.bench.bench_http
