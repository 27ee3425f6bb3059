# Parley: `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: run test test-sqlite test-services client-tools bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# The client generators that tests/e2e/test_generated_clients.py runs (Python and
# Node packages, pinned in tests/e2e/clients/), apart from the project's .venv.
TOOLS := .tools
CLIENTS := tests/e2e/clients
$(TOOLS)/.installed: $(CLIENTS)/requirements.txt $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	rm -rf $(TOOLS) && mkdir -p $(TOOLS)/node
	$(PYTHON) -m venv $(TOOLS)/python
	$(TOOLS)/python/bin/python -m pip install --quiet -r $(CLIENTS)/requirements.txt
	cp $(CLIENTS)/package.json $(CLIENTS)/package-lock.json $(TOOLS)/node/
	cd $(TOOLS)/node && npm ci --no-audit --no-fund --silent
	touch $@

## Install the OpenAPI client generators (openapi-python-client, openapi-typescript) into .tools/.
client-tools: $(TOOLS)/.installed

.env:
	$(BIN)/python scripts/make_env.py > .env.tmp && mv .env.tmp .env

## Serve everything on http://127.0.0.1:8000 (SQLite + in-memory channel layer).
run: $(STAMP)
	$(MAKE) --no-print-directory .env
	@# An older .env without push keys gets a pair appended.
	grep -q '^VAPID_PRIVATE_KEY=.' .env || PARLEY_DEBUG=1 $(BIN)/python manage.py generate_vapid_keys >> .env
	@# And one without the demo webhook source (docs/webhooks.md) gets that.
	grep -q '^INBOUND_WEBHOOK_SECRETS=' .env || $(BIN)/python scripts/make_env.py --inbound-webhook >> .env
	@# And one from before the website widget gets the example host site's origin (docs/widget.md).
	grep -q '^PARLEY_WIDGET_ORIGINS=' .env || $(BIN)/python scripts/make_env.py --widget-origins >> .env
	@# And one from before per-customer keys gets a master key (docs/privacy.md).
	grep -q '^PARLEY_KEYS=.' .env || $(BIN)/python scripts/make_env.py --master-keys >> .env
	@# The development mode (debug pages, plain-http cookies, static files read
	@# from the apps' folders) is on for `make run` only; .env may say otherwise.
	set -a && . ./.env && set +a && export PARLEY_DEBUG=$${PARLEY_DEBUG:-1} && \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py ensure_demo_agent && \
	{ $(BIN)/python -m http.server 8080 --bind 127.0.0.1 -d examples/widget >/dev/null 2>&1 & example=$$!; \
	  trap 'kill $$example 2>/dev/null' EXIT INT TERM; \
	  echo "The website widget's example host site: http://localhost:8080/ (docs/widget.md)"; \
	  $(BIN)/python manage.py serve --bind 127.0.0.1 --port 8000; }

## The whole suite on SQLite; again on PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set.
test: $(STAMP)
	$(MAKE) --no-print-directory test-sqlite
	@if [ -n "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory test-services; \
	else echo "DATABASE_URL unset: PostgreSQL and Redis runs skipped (set it to run them)"; fi

test-sqlite: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL -u PARLEY_REQUIRE_SERVICES $(PYTEST) -m "not e2e"

test-services: $(STAMP) $(TOOLS)/.installed
	$(PYTEST)

## Benchmarks against PostgreSQL (DATABASE_URL, default the local test database).
bench: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/python bench/run_all.py

## Types (mypy), the import contracts between contexts (import-linter), imports and names (ruff).
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/python -m mypy kernel observability eventstore workers accounts attachments chat customers conversations readmodels realtime notifications outbound inbound api web project

clean:
	rm -rf $(VENV) $(TOOLS) .test-*.sqlite3* parley.sqlite3*
