# edgetk — `make demo` runs the whole spine, `make test` runs the test suite.
# Both set everything up first: a .venv with the project, and the Debian packages
# (qemu-system-arm, gcc-arm-none-eabi) when running as root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgetk-installed
TASK   ?= imu-motions
PYTEST_ARGS ?=

.PHONY: setup sysdeps demo test bench clean clean-cache

setup: $(STAMP) sysdeps

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (apt-get install python3.11 python3.11-venv) or run: make PYTHON=python3 ..."; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/sysdeps.sh --venv $(PYTHON)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,cluster,lab]'
	@touch $(STAMP)

sysdeps:
	@bash scripts/sysdeps.sh

demo: setup
	$(VENV)/bin/edgetk demo --task $(TASK)

# Test files run in TEST_JOBS processes (pytest-xdist; a file's tests stay together so its module fixtures, e.g.
# the Ray cluster and the labgrid lab, start once). TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2
test: setup
	EDGETK_REQUIRE_QEMU=1 $(PY) -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs build .pytest_cache

# The cache (builds, wrapped bundles, native and feature caches) is the user's, shared by every checkout and
# installed edgetk: `make clean` leaves it; this removes it (the folder toolkit/paths.py cache_dir() uses).
clean-cache:
	@xdg="$${XDG_CACHE_HOME:-}"; case "$$xdg" in /*) ;; *) xdg="$$HOME/.cache" ;; esac; \
	dir="$${EDGETK_CACHE:-$$xdg/edgetk}"; \
	case "$$dir" in ""|/|"$$HOME"|"$$HOME/") echo "refusing to remove '$$dir' (check EDGETK_CACHE)"; exit 1 ;; esac; \
	echo "removing the edgetk cache: $$dir"; rm -rf -- "$$dir"
