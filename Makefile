# Two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export DJANGO_SETTINGS_MODULE ?= instagender.settings
# make test runs the suite in this many processes (pytest-xdist), each test file whole in one of
# them, so a file's module-scoped servers and clusters are made once. 2 = the CI machine's cores.
PYTEST_WORKERS ?= 2

.PHONY: run test install install-web install-dev node migrate demo-model lint fix bench clean image-check

run: install-web node migrate ## Install what the web needs, migrate, serve on :8000; the demo model trains meanwhile
	@echo "The demo model is prepared in the background (log: var/demo-model.log); until it is active,"
	@echo "a prediction answers that predictions are warming up. Everything else works already."
	@($(MAKE) --no-print-directory demo-model > var/demo-model.log 2>&1 \
	  || echo "make demo-model failed: no model is switched on; see var/demo-model.log") &
	$(PY) manage.py runserver 127.0.0.1:8000

test: install-dev node ## Lint, migration check and the whole suite (browser tests included)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# What the web needs (no TensorFlow): enough to serve the first page.
$(VENV)/.installed-web: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.installed-run: requirements.txt requirements-train.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements-train.txt
	touch $(VENV)/.installed-web $@

$(VENV)/.installed-dev: requirements.txt requirements-train.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements-dev.txt
	touch $(VENV)/.installed-web $(VENV)/.installed-run $@

install-web: $(VENV)/.installed-web
install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node: node_modules/.package-lock.json

migrate: install-web
	@mkdir -p var
	$(PY) manage.py migrate --noinput

demo-model: install migrate ## Trains the synthetic demo model on first run; cached afterwards
	$(PY) manage.py ensure_demo_model

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fix: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install-dev node
	$(PY) bench/inference.py
	$(PY) bench/upload.py
	$(PY) bench/predict.py
	$(PY) bench/dashboard.py
	$(PY) bench/training.py --seeds 5

image-check: ## Build the Dockerfile with buildah on stand-in bases and run it (deploy/image/README.md); TRAIN=1 adds the train stage
	TRAIN=$(or $(TRAIN),0) deploy/image/check

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .ruff_cache
