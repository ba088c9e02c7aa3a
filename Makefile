# billing_sync: the demo, the tests and the linters.
# Odoo 18 must already be installed in $(PYTHON) (or ODOO_PYTHON); see README.md.
# Every variable can be overridden from the environment.

PYTHON      ?= python3
ODOO_PYTHON ?= $(PYTHON)
TEST_DB     ?= billing_sync_test
DEMO_DB     ?= billing_sync_demo
HTTP_PORT   ?= 8069
# the ledger sandbox: Xero on SANDBOX_PORT, QuickBooks Online on the next port
SANDBOX_PORT ?= 8070
BUILD       := .build
HARNESS     := ODOO_PYTHON=$(ODOO_PYTHON) $(PYTHON) tools/harness.py
PYTEST_ARGS ?=

export ODOO_PYTHON

BENCH_DB    ?= billing_sync_bench
BENCH_WINDOW ?= 20
BENCH_ARGS  ?=

.PHONY: help deps test-deps check demo test lint clean bench-outbound check-totals

help:
	@echo "make demo   - demo database (sample clients, proposals, sandbox ledgers) at http://localhost:$(HTTP_PORT) (admin/admin)"
	@echo "make test   - fresh test database with billing_sync, then the whole test suite"
	@echo "make lint   - ruff + pylint-odoo checks"

check:
	@$(HARNESS) check-odoo

deps: check
	@$(ODOO_PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt \
	  || { echo "billing_sync: could not install requirements.txt into $(ODOO_PYTHON); install them by hand" >&2; exit 2; }

test-deps: check
	@$(ODOO_PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt \
	  || { echo "billing_sync: could not install requirements-test.txt into $(ODOO_PYTHON); install them by hand" >&2; exit 2; }

test: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(TEST_DB).conf $(TEST_DB)
	@echo "billing_sync: creating test database $(TEST_DB) (install of billing_sync, ~1 min)"
	@$(HARNESS) test-db $(TEST_DB) $(BUILD)/odoo-$(TEST_DB).conf
	@$(ODOO_PYTHON) -m pytest tests -p no:cacheprovider \
	    --odoo-config=$(BUILD)/odoo-$(TEST_DB).conf --odoo-database=$(TEST_DB) --odoo-http \
	    $(PYTEST_ARGS)

demo: deps
	@$(HARNESS) postgres
	@$(HARNESS) check-port $(HTTP_PORT)
	@$(HARNESS) check-port $(SANDBOX_PORT)
	@$(HARNESS) check-port $$(($(SANDBOX_PORT) + 1))
	@$(HARNESS) config $(BUILD)/odoo-$(DEMO_DB).conf $(DEMO_DB) --http-port $(HTTP_PORT) \
	    --allowed-endpoints 127.0.0.1:$(SANDBOX_PORT),127.0.0.1:$$(($(SANDBOX_PORT) + 1))
	@echo "billing_sync: preparing demo database $(DEMO_DB)"
	@$(HARNESS) demo-db $(DEMO_DB) $(BUILD)/odoo-$(DEMO_DB).conf
	@$(HARNESS) demo-connections $(DEMO_DB) $(BUILD)/odoo-$(DEMO_DB).conf $(SANDBOX_PORT)
	@echo "billing_sync: ledger sandbox: Xero http://127.0.0.1:$(SANDBOX_PORT), QuickBooks http://127.0.0.1:$$(($(SANDBOX_PORT) + 1)), state kept in $(BUILD)/sandbox-$(DEMO_DB)"
	@echo "billing_sync: serving http://localhost:$(HTTP_PORT)  (login admin / password admin; Ctrl-C stops)"
	@$(HARNESS) serve-demo $(DEMO_DB) $(BUILD)/odoo-$(DEMO_DB).conf $(SANDBOX_PORT)

# Backfill benchmark (issue 6): 10,000 invoices for 2,000 clients into each
# sandbox, rate limits on, a rate-limit "minute" of BENCH_WINDOW seconds, pushed by
# --workers N push worker processes (BENCH_ARGS="--workers 3"; default 1).
bench-outbound: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(BENCH_DB).conf $(BENCH_DB)
	@echo "billing_sync: creating benchmark database $(BENCH_DB)"
	@$(HARNESS) test-db $(BENCH_DB) $(BUILD)/odoo-$(BENCH_DB).conf
	@$(ODOO_PYTHON) bench/outbound.py --config $(BUILD)/odoo-$(BENCH_DB).conf \
	    --database $(BENCH_DB) --window-seconds $(BENCH_WINDOW) $(BENCH_ARGS)

# Benchmarks of issue 17 (BENCH_ARGS as above; each prints one JSON line per provider
# with its figures and their ratios to the targets).
# Latency: a real Odoo server (cron threads on), invoices posted through XML-RPC one a
# second for 2 minutes, time until each is in the sandbox, on a quiet queue and then while
# a second company backfills 10,000 invoices. Quick run: BENCH_ARGS="--seconds 20 --backfill 500"
.PHONY: bench-latency bench-inbound bench-overhead
bench-latency: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(BENCH_DB).conf $(BENCH_DB)
	@echo "billing_sync: creating benchmark database $(BENCH_DB)"
	@$(HARNESS) test-db $(BENCH_DB) $(BUILD)/odoo-$(BENCH_DB).conf
	@$(ODOO_PYTHON) bench/latency.py --config $(BUILD)/odoo-$(BENCH_DB).conf \
	    --database $(BENCH_DB) $(BENCH_ARGS)

# Inbound: a real Odoo server (cron threads on) receiving the sandbox's signed webhooks;
# the bookkeeper changes a client's email in the ledger one a second for 2 minutes, time
# until each shows on the Odoo partner, and the webhook answer time. Quick run:
# BENCH_ARGS="--seconds 20" (one provider: BENCH_ARGS="--seconds 20 --providers xero")
bench-inbound: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(BENCH_DB).conf $(BENCH_DB)
	@echo "billing_sync: creating benchmark database $(BENCH_DB)"
	@$(HARNESS) test-db $(BENCH_DB) $(BUILD)/odoo-$(BENCH_DB).conf
	@$(ODOO_PYTHON) bench/inbound.py --config $(BUILD)/odoo-$(BENCH_DB).conf \
	    --database $(BENCH_DB) $(BENCH_ARGS)

# Overhead: 1,000 invoices posted with sync on and 1,000 with sync off, alternating
# chunks, one transaction each. Quick run: BENCH_ARGS="--invoices 100"
bench-overhead: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(BENCH_DB).conf $(BENCH_DB)
	@echo "billing_sync: creating benchmark database $(BENCH_DB)"
	@$(HARNESS) test-db $(BENCH_DB) $(BUILD)/odoo-$(BENCH_DB).conf
	@$(ODOO_PYTHON) bench/overhead.py --config $(BUILD)/odoo-$(BENCH_DB).conf \
	    --database $(BENCH_DB) $(BENCH_ARGS)

# Totals benchmark (issue 15): 2,000 generated documents into each sandbox, then
# every ledger figure compared with Odoo's to the cent.
TOTALS_ARGS ?=
check-totals: test-deps
	@$(HARNESS) postgres
	@$(HARNESS) config $(BUILD)/odoo-$(BENCH_DB).conf $(BENCH_DB)
	@echo "billing_sync: creating benchmark database $(BENCH_DB)"
	@$(HARNESS) test-db $(BENCH_DB) $(BUILD)/odoo-$(BENCH_DB).conf
	@$(ODOO_PYTHON) bench/check_totals.py --config $(BUILD)/odoo-$(BENCH_DB).conf \
	    --database $(BENCH_DB) $(TOTALS_ARGS)

lint:
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-lint.txt \
	  || { echo "billing_sync: could not install requirements-lint.txt; install them by hand" >&2; exit 2; }
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pylint --rcfile=.pylintrc billing_sync
	$(PYTHON) -m oca_pre_commit_hooks.cli --no-verbose billing_sync

clean:
	rm -rf $(BUILD)
