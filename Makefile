# The README's two commands are `make bench` and `make test`; both set up a fresh machine first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FUSEBENCH := $(VENV)/bin/fusebench
# What a run needs (git, make and gcc: the catalog's programs), then what only the tests need
# (bindfs: the external-server tests; chromium: renders the HTML report in a test).
RUN_PACKAGES := fio fuse3 git make gcc
TEST_PACKAGES := bindfs chromium

.PHONY: all setup setup-test bench perf test unit

all: test

# $(call install,APT PACKAGES,PIP TARGET): idempotent; apt only when a package is missing, the
# venv only when absent.
define install
	@missing=""; \
	for pkg in $(1); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	[ -x $(PY) ] || $(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet -e '$(2)'
endef

# What `make bench` and `make perf` need to run a scenario.
setup:
	$(call install,$(RUN_PACKAGES),.)

# What `make test` needs on top: the test tools and packages.
setup-test:
	$(call install,$(RUN_PACKAGES) $(TEST_PACKAGES),.[test])

# $(call run-scenario,NAME): scenarios/NAME.yaml -> results/NAME -> reports/NAME.html + text table.
# An unfinished results/NAME (killed or interrupted) is resumed with the scenario.yaml kept in it;
# a complete one is left alone and results/NAME-<UTC time> is written instead.
# Exit status: fusebench's (0 ok, 1 some run failed, 2 cannot run here, 130 interrupted).
define run-scenario
	@out=results/$(1); scenario=scenarios/$(1).yaml; resume=""; \
	if [ -e $$out ]; then \
		if grep -q '"status": "complete"' $$out/manifest.json 2>/dev/null; then \
			out=$$out-$$(date -u +%Y%m%dT%H%M%SZ); \
		else \
			scenario=$$out/scenario.yaml; resume=--resume; \
		fi; \
	fi; \
	$(FUSEBENCH) run $$scenario --out $$out $$resume; status=$$?; \
	if [ $$status -le 1 ]; then \
		$(FUSEBENCH) report $$out -o reports/$(1).html && $(FUSEBENCH) report $$out --format text || status=1; \
	fi; \
	exit $$status
endef

bench: setup
	$(call run-scenario,quick)

# The unit tests first, without root powers (so a unit test that quietly needs root fails here too),
# then the integration tests, which mount real FUSE file systems (as root).
test: setup-test
	@$(MAKE) --no-print-directory unit
	$(PY) -m pytest -ra -m integration

# The tests that need no root and no mount (README: "The unit tests alone"). As root they run with
# every capability dropped (uid 0 stays, so the interpreter and the checkout remain readable).
UNIT := $(PY) -m pytest -ra -m "not integration" -p no:cacheprovider
unit:
	@[ -x $(PY) ] || { echo "no $(VENV): run 'make setup-test' first" >&2; exit 2; }
	@if [ "$$(id -u)" = 0 ]; then \
		echo "setpriv (every capability dropped) $(UNIT)"; \
		setpriv --bounding-set -all --inh-caps -all --ambient-caps -all --securebits +noroot,+noroot_locked -- $(UNIT); \
	else \
		echo "$(UNIT)"; $(UNIT); \
	fi

# The built-in server's performance scenario, then the tool's own micro-benchmarks (benchmarks/*.py;
# tracing_overhead.py measures through bindfs, hence the test packages).
perf: setup-test
	$(call run-scenario,perf)
	@set -e; for script in benchmarks/*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(PY) "$$script"; done
