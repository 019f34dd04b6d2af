# The shop's two everyday commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
FLASK  := $(BIN)/flask --app shop

.PHONY: run test bench gallery install install-test install-bench translations translations-update clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

install: $(VENV)/.installed translations
install-test: $(VENV)/.installed-test translations
install-bench: $(VENV)/.installed-bench translations

translations: $(VENV)/.installed
	$(BIN)/pybabel compile --use-fuzzy -d shop/translations --statistics 2>&1 | tail -n 1

# After changing any user-facing text: re-extract, then translate the new entries in
# shop/translations/en/LC_MESSAGES/messages.po (the test suite fails while any is missing).
translations-update: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output -o shop/translations/messages.pot .
	$(BIN)/pybabel update -i shop/translations/messages.pot -d shop/translations --no-fuzzy-matching

run: install
	mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) demo load --if-empty
	$(FLASK) demo logins --port $(PORT)
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

test: install-test
	$(BIN)/ruff check shop tests migrations bench
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

# The phone gallery in docs/: the main pages of each role at 390 px, over the demo (Chromium from Debian).
gallery: install-test
	$(BIN)/python -m tests.browser.gallery

# County-scale benchmarks (README, "Benchmarks"): BENCH_SCALE=small for a quick run.
bench: install-bench
	@command -v wrk >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
