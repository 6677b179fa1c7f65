# The README's commands. `make book` and `make test` set everything up themselves.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= cpu
NB     ?= notebooks/01_uniform.md
ARGS   ?=

.PHONY: book test run bench clean venv screenshots paper

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)  ## render the HTML book from stored results into _build/html (never trains)
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going  # --all: re-read every page, results change without the sources changing

test: $(STAMP)  ## the whole test suite (unit tests, smoke runs, nbval, the book build)
	$(PY) -m pytest

run: $(STAMP)   ## make run NB=notebooks/01_uniform.md SCALE=cpu ARGS="-p seed 1"
	$(PY) -m mdl_utils.run $(NB) --scale $(SCALE) $(ARGS)

paper: $(STAMP) ## the paper-scale jobs (docs/PAPER_SCALE.md): make paper ARGS="--only mnist/prequential --budget 600"
	$(PY) -m mdl_utils.jobs run --scale paper $(ARGS)

bench: $(STAMP) ## throughput and wall-time tables
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

screenshots: $(STAMP) ## full-height PNGs of every built page, 1400 px and 400 px wide, into _build/screenshots
	test -f _build/html/index.html || $(MAKE) book
	$(PY) tests/test_browser.py _build/html _build/screenshots

clean:
	rm -rf _build
