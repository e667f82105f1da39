# The two commands a newcomer needs: `make demo` and `make test`. Both install what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help system-packages venv up down status infra-up infra-down test test-fast lint demo asyncapi chaos bench bench-waitlist clean-state

help:
	@echo "make demo      replay a programme year through the whole stack, print the report, write var/report.html"
	@echo "make test      run every test against real Kafka, PostgreSQL and SMTP"
	@echo "make up|down   start / stop Kafka, PostgreSQL, the SMTP sink and the three services"
	@echo "make status    what runs"
	@echo "make lint      import-linter (architecture contracts), ruff, mypy --strict on all code"
	@echo "make asyncapi  regenerate docs/asyncapi.yaml"
	@echo "make bench     throughput and latency against the framework floor (bench/results/)"
	@echo "make bench-waitlist  a withdrawal's cost with 100 and 100,000 waiting for money"
	@echo "make chaos     the full fault suite: kills, broker and database stops, SMTP faults"

# Debian packages first (one script with .ci/run): a fresh machine may lack even python3-venv.
system-packages:
	@bash deploy/local/system-packages.sh

$(STAMP): pyproject.toml | system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: system-packages $(STAMP)

# Instances per service under `make up` (each in its service's consumer group, instance i on the
# service's HTTP port + 10·i); `make down` and `make status` cover every instance.
REPLICAS ?= 1

up: venv
	REPLICAS=$(REPLICAS) $(PY) -m deploy.local.stack up

down: venv
	$(PY) -m deploy.local.stack down

status: venv
	$(PY) -m deploy.local.stack status

infra-up: venv
	$(PY) -m deploy.local.stack infra-up

infra-down: venv
	$(PY) -m deploy.local.stack down

test: venv
	$(PY) -m deploy.local.stack test

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check shared services deploy lotse tests bench
	$(VENV)/bin/ruff format --check shared services deploy lotse tests bench
	$(VENV)/bin/mypy shared services deploy lotse tests bench

# One programme for the whole stack, e.g. `make demo FUNDING_PROGRAM_FILE=services/funding/programs/bayern.toml`:
# the services get it from `make up`, lotse the same resolved value from `deploy.local.stack env`.
ifdef FUNDING_PROGRAM_FILE
export FUNDING_PROGRAM_FILE
endif

demo: venv
	$(PY) -m deploy.local.stack up
	$(PY) -m deploy.local.stack run lotse.cli demo --html var/report.html; status=$$?; $(PY) -m deploy.local.stack down; exit $$status

asyncapi: venv
	$(PY) -m lotse.asyncapi docs/asyncapi.yaml

clean-state: down
	rm -rf var

# Benchmarks and the full fault suite run their own stack (other ports, other LOTSE_VAR_DIR); never part of `make test`.
bench: venv
	bash deploy/local/bench-packages.sh
	$(PY) -m bench

bench-waitlist: venv
	$(PY) -m bench.waitlist

chaos: venv
	$(PY) -m tests.reliability.chaos --events 20000

# The Kubernetes deployment (deploy/k8s/, README "Deploying to Kubernetes"), checked offline.
# kustomize is a Go program: installed into .venv/bin through the Go module proxy (as in deploy/k8s/check.py).
.PHONY: deploy-check deploy-render
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE := $(VENV)/bin/kustomize
OVERLAY ?= production

$(KUSTOMIZE):
	mkdir -p $(VENV)/bin
	GOBIN=$(abspath $(VENV)/bin) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

deploy-check: venv $(KUSTOMIZE)
	KUSTOMIZE=$(abspath $(KUSTOMIZE)) $(PY) -m deploy.k8s.check

# The rendered YAML on stdout and nothing else (whatever an install prints goes to stderr).
deploy-render:
	@case "$(OVERLAY)" in local|production) ;; *) echo "OVERLAY must be local or production" >&2; exit 2;; esac
	@$(MAKE) --no-print-directory -s $(KUSTOMIZE) >&2
	@$(KUSTOMIZE) build deploy/k8s/overlays/$(OVERLAY)
