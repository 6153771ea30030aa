# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   create .venv, install, build the op, run the demo on the bundled images
#   make test   the same set-up, then the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OP_SOURCES := $(wildcard custom_ops/cc/kernels/*.h custom_ops/cc/kernels/*.cc custom_ops/cc/ops/*.cc custom_ops/fixed/*.cc)
INSTALLED := $(VENV)/.installed
BUILT := car_tf/ops/.built

.PHONY: all install build demo test test-fast clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# TensorFlow goes in first because the op is compiled against it without
# build isolation (which would download a second copy into a temporary env).
$(INSTALLED): $(PY) pyproject.toml setup.py
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
	$(PIP) install --quiet "tensorflow==2.21.*"
	$(PIP) install --quiet --no-build-isolation -e ".[test,beam]"
	touch $(BUILT) $@

# Rebuild the op library and the fixed-kernel downscaler when their C++/CUDA sources change.
$(BUILT): $(INSTALLED) $(OP_SOURCES)
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

install: $(INSTALLED)

build: $(BUILT)

demo: $(BUILT)
	$(PY) tools/demo.py --out_dir=demo_output

# pytest exits 5 when no test ran; make treats that as the failure it is.
test: $(BUILT)
	$(PY) -m pytest -q tests

test-fast: $(BUILT)
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf build dist *.egg-info car_tf/ops/*.so car_tf/_fixed_downscale*.so $(BUILT) demo_output
