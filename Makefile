# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint install clean bench chromium spamassassin dovecot

run: $(STAMP)
	$(BIN)/syndicate run --once --config config.yaml -v
	@echo "Feeds: $(CURDIR)/public/feed.xml, atom.xml, feed.json (+ tags/ and categories/)"

# The suite runs against a throw-away PostgreSQL server too (tests/postgres.sh installs
# Debian's postgresql if needed, starts it on a free port, and removes it afterwards).
test: $(STAMP) chromium spamassassin dovecot
	@pgdir=$$(mktemp -d); \
	url=$$(tests/postgres.sh start $$pgdir) || exit 1; \
	SYNDICATE_TEST_POSTGRES_URL=$$url $(BIN)/pytest; status=$$?; \
	tests/postgres.sh stop $$pgdir; exit $$status
	$(MAKE) lint

# The fast tier: pure logic and in-process tests (no subprocess, server, browser or
# PostgreSQL), under 20 s; `make test` runs them too, with everything else.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -q

# The email rendering tests load the digest in Debian's headless Chromium.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the email rendering tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The mail hygiene test runs Debian's SpamAssassin on a digest, offline: the package ships
# its rules in /usr/share/spamassassin (sa-update, which needs the network, is not used).
spamassassin:
	@command -v spamassassin >/dev/null 2>&1 || { \
	  echo "installing Debian's spamassassin for the mail hygiene test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin >/dev/null; }

# The IMAP bounce-mailbox tests read from Debian's Dovecot, started by the test itself on
# 127.0.0.1 with its own config (the package's own service is not used).
dovecot:
	@test -x /usr/sbin/dovecot || { \
	  echo "installing Debian's dovecot-imapd for the IMAP bounce tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check syndicate tests bench
	$(BIN)/ruff format --check syndicate tests bench
	$(BIN)/mypy

install: $(STAMP)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# bench/compare.py: syndicate beside Debian's hugo (feeds only) on one generated corpus,
# cold and the cron path; exit 1 when a target is missed. `make bench POSTS=1000` for a
# quick run; BENCH_ARGS passes more options (e.g. --runs 1, --no-budget).
POSTS ?= 10000
bench: $(STAMP)
	@command -v hugo >/dev/null 2>&1 || { \
	  echo "installing Debian's hugo for the benchmark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hugo >/dev/null; }
	$(BIN)/python bench/compare.py --posts $(POSTS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) public state outbox .pytest_cache .mypy_cache .ruff_cache
