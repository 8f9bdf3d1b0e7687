# spokenstyle: two commands for a fresh clone.
#   make book   creates .venv if needed and builds the book into _build/html
#   make test   creates .venv if needed; unit tests; every notebook with nbval (fast profile);
#               the book with -W; checks of the built HTML (pages, figures, errors, widgets)
# and, on a CUDA machine, make gpu-check (full profile -> reports/gpu-check.json) and make gpu-train
# (the shipped DCGAN and translators at GPU size -> reports/gpu-train/).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BOOTSTRAP_PYTHON ?= python3
# PYTHON may name another interpreter (e.g. PYTHON=python3 on an offline GPU machine that
# imports the package from the checkout); then no venv is created.
PYTHON ?= $(VENV)/bin/python
ENV_STAMP := $(VENV)/.spokenstyle-env
VENDOR := _build/.vendor/_static/_vendor
MATHJAX := tools/widgets/node_modules/mathjax/es5
WIDGETS := tools/widgets/node_modules/@jupyter-widgets/html-manager/dist

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: env book test unit nbval book-strict html-check gpu-check gpu-train runtimes stamp clean

env: $(ENV_STAMP) $(VENDOR)/embed-amd.js

COLAB_WHEELS := $(VENV)/colab-wheels

$(ENV_STAMP): requirements-ci.txt pyproject.toml tests/colab/ipywidgets7.txt
	@echo "== env: creating $(VENV) (pinned CI requirements, then pip install -e .[book,test])"
	@start=$$(date +%s); \
	[ -x $(VENV)/bin/python ] || $(BOOTSTRAP_PYTHON) -m venv $(VENV); \
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24" 2>&1 \
	  | { grep -v "^WARNING: Location 'file:" || true; }; \
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-ci.txt 2>&1 \
	  | { grep -v "^WARNING: Location 'file:" || true; }; \
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -e '.[book,test]' 2>&1 \
	  | { grep -v "^WARNING: Location 'file:" || true; }; \
	$(VENV)/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d $(COLAB_WHEELS) \
	  -r tests/colab/ipywidgets7.txt 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; \
	bash tools/install-browser.sh; \
	echo "== env: $$(( $$(date +%s) - start )) s, venv $$(du -sh $(VENV) | cut -f1)"
	@touch $@

# The ipywidgets JavaScript and MathJax for the static book, from npm (pinned by package-lock.json):
# served by the book itself, so widgets and formulas render without a CDN.
$(VENDOR)/embed-amd.js: tools/widgets/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to vendor the widget JavaScript: install Node.js"; exit 1; }
	cd tools/widgets && npm ci --silent --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp $(WIDGETS)/embed-amd.js $(WIDGETS)/*.woff $(WIDGETS)/*.woff2 $(WIDGETS)/*.ttf $(WIDGETS)/*.eot $(WIDGETS)/*.svg $(VENDOR)/
	cp tools/widgets/node_modules/requirejs/require.js $(VENDOR)/require.js
	mkdir -p $(VENDOR)/mathjax/output
	cp $(MATHJAX)/tex-chtml.js $(VENDOR)/mathjax/
	cp -r $(MATHJAX)/input $(MATHJAX)/ui $(MATHJAX)/a11y $(MATHJAX)/adaptors $(VENDOR)/mathjax/
	cp -r $(MATHJAX)/output/chtml $(VENDOR)/mathjax/output/

book: env
	$(VENV)/bin/jupyter-book build . --builder html
	@echo "== book: open _build/html/index.html"

test: env
	@t0=$$(date +%s); \
	$(MAKE) --no-print-directory unit; t1=$$(date +%s); \
	$(MAKE) --no-print-directory nbval; t2=$$(date +%s); \
	$(MAKE) --no-print-directory book-strict; t3=$$(date +%s); \
	$(MAKE) --no-print-directory html-check; t4=$$(date +%s); \
	echo "== make test phases: unit $$((t1-t0)) s, nbval $$((t2-t1)) s, book $$((t3-t2)) s, html checks $$((t4-t3)) s"

# SPOKENSTYLE_COLAB_WHEELS: Colab's ipywidgets 7.7.1 (downloaded by `make env`), for tests/test_colab.py,
# which must run here (not skip): it installs the package into a Debian-layout Python as Colab has
unit:
	@echo "== unit tests"
	SPOKENSTYLE_COLAB_WHEELS=$(abspath $(COLAB_WHEELS)) SPOKENSTYLE_REQUIRE_COLAB=1 $(PYTHON) -m pytest tests -m "not book" -q

# every chapter notebook, fast profile, on the CPU; per-notebook wall times -> reports/local/.
# Each notebook that passes is stored with its outputs in the book's jupyter-cache
# (tools/nbval_cache.py), so book-strict renders nbval's execution instead of running it again.
nbval:
	@echo "== notebooks (nbval, fast profile)"
	SPOKENSTYLE_PROFILE=fast SPOKENSTYLE_DEVICE=cpu SPOKENSTYLE_TIMINGS=reports/local/nbval-fast.json \
	  SPOKENSTYLE_NB_CACHE=_build/.jupyter_cache \
	  $(PYTHON) -m pytest --nbval-lax chapters appendices -q
	$(PYTHON) tools/nbtimes.py reports/local/nbval-fast.json --limit 60

book-strict:
	@echo "== book (-W: warnings are errors)"
	SPOKENSTYLE_PROFILE=fast SPOKENSTYLE_DEVICE=cpu $(VENV)/bin/jupyter-book build . --builder html -W --keep-going

html-check:
	@echo "== checks of the built HTML"
	$(PYTHON) tools/check_html.py _build/html
	$(PYTHON) -m pytest tests -m book -q

# record the fast-profile runtimes of the last nbval run into reports/ and the Preface
runtimes:
	$(PYTHON) tools/nbtimes.py reports/local/nbval-fast.json --commit reports/runtimes.json
	$(PYTHON) tools/stamp.py

stamp:
	$(PYTHON) tools/stamp.py

gpu-check: $(if $(filter $(VENV)/bin/python,$(PYTHON)),env)
	$(PYTHON) tools/gpu_check.py --out reports/gpu-check.json

gpu-train: $(if $(filter $(VENV)/bin/python,$(PYTHON)),env)
	$(PYTHON) tools/gpu_train.py --out reports/gpu-train --seconds 300 --bench 120

clean:
	rm -rf _build reports/local
