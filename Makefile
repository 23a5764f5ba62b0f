# Tessera — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PY := .venv/bin/python
# uv uses the machine's python3 (3.11+) and never downloads an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3
# The npm OpenID client libraries that tests/e2e/test_rp_node.py runs on Node.js. After a
# successful npm ci the rule touches node_modules/.package-lock.json (npm's record of the
# install): it is newer than the lock and package.json exactly when node_modules is up to date.
NODE_RP := tests/e2e/node
NODE_RP_INSTALLED := $(NODE_RP)/node_modules/.package-lock.json

.PHONY: help run test lint typecheck format migrations-check deploy-check clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(UV):
	@echo "tessera: installing uv $(UV_VERSION) into $(TOOLS)/"
	@python3 -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

run: $(UV) ## install, migrate and start the whole IdP (web, worker, beat, Redis); Ctrl-C stops
	@$(UV) sync --frozen --no-dev --inexact --quiet
	@$(PY) -m idp.serve

test: $(UV) ## install everything the tests need, then lint, type-check and run the suite
	@scripts/ensure-system-packages.sh
	@$(UV) sync --frozen --quiet
	@$(MAKE) --no-print-directory --silent $(NODE_RP_INSTALLED)
	@$(MAKE) --no-print-directory lint typecheck migrations-check deploy-check
	@$(PY) -m pytest

$(NODE_RP_INSTALLED): $(NODE_RP)/package-lock.json $(NODE_RP)/package.json
	@echo "tessera: installing the npm packages of $(NODE_RP)/ (npm ci)"
	@npm ci --prefix $(NODE_RP) --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

lint: ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: ## mypy (strict, django-stubs)
	$(PY) -m mypy

format: ## rewrite the code in ruff's format and apply safe lint fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

migrations-check: ## fail when a model change has no migration
	$(PY) manage.py makemigrations --check --dry-run

deploy-check: ## Django's deployment checklist against production settings
	IDP_ENV=production IDP_ISSUER=https://idp.example.com IDP_DATA_DIR=$$(mktemp -d) \
	IDP_SMTP_URL=smtp://mail.example.com \
	IDP_SECRET_KEY=deploy-check-$$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') \
	IDP_KEY_ENCRYPTION_KEY=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') \
	$(PY) manage.py check --deploy --fail-level WARNING

clean: ## remove the virtualenvs, node_modules and caches (keeps var/, the embedded data)
	rm -rf .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache test-artifacts $(NODE_RP)/node_modules
