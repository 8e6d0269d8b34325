# Tritium's commands. Quick start: `make serve` and `make test` (see README.md).
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
PLUGINS  := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP    := $(VENV)/.installed
EXAMPLES := examples/model_repository
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=

.PHONY: install serve test lint typecheck examples bench clean prometheus proto container-tools image-test

install: $(STAMP)

# Re-installs only when a pyproject or the dev requirements changed (editable installs pick up code changes).
$(STAMP): core/pyproject.toml $(wildcard plugins/*/pyproject.toml) examples/plugin_example/pyproject.toml requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt \
		-e './core[testing]' $(foreach p,$(PLUGINS),-e './$(p:/=)[dev]') -e './examples/plugin_example[dev]'
	touch $@

examples: $(STAMP)
	$(PY) examples/build_repository.py $(EXAMPLES)

serve: install examples
	$(VENV)/bin/tritium serve --model-repository $(EXAMPLES) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

# Prometheus (Debian's package) is what the metrics tests scrape with; installed here when missing.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null \
			|| echo "warning: could not install prometheus; the scrape test will skip"; \
		else echo "warning: prometheus not installed (apt-get install prometheus); the scrape test will skip"; fi; }

test: install examples prometheus
	$(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)
	# The HTTP tests again on aiohttp's plain path (the fast path switched off), which other aiohttp versions get.
	TRITIUM_HTTP_PLAIN=1 $(PY) -m pytest -q -n 2 --dist loadfile plugins/frontend_http tests/test_http_infer.py \
		tests/test_http_admin.py tests/test_http_tls_e2e.py
	# The gRPC tests again on the grpcio transport (--grpc-transport=grpcio, the alternative to the native one).
	TRITIUM_TEST_GRPC_TRANSPORT=grpcio $(PY) -m pytest -q -n 2 --dist loadfile plugins/frontend_grpc \
		tests/test_grpc_e2e.py tests/test_grpc_stream_e2e.py tests/test_grpc_security_e2e.py
	# The protocol end-to-end tests again with two worker processes and the executor (tritium serve --workers 2):
	# multi-process mode must answer exactly like one process.
	TRITIUM_TEST_WORKERS=2 $(PY) -m pytest -q -n 2 --dist loadfile tests/test_http_infer.py tests/test_grpc_e2e.py \
		tests/test_grpc_stream_e2e.py

# Container image tests (deploy/): podman, buildah, runc, debootstrap and the CNI DNS plugin are installed here
# when missing (as root); without a working podman the tests skip with the reason. Bounded to 40 minutes.
CONTAINER_PACKAGES := podman buildah runc debootstrap uidmap golang-github-containernetworking-plugin-dnsname
container-tools:
	@command -v podman >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 && [ -x /usr/lib/cni/dnsname ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CONTAINER_PACKAGES)) >/dev/null \
			|| echo "warning: could not install $(CONTAINER_PACKAGES); the image tests will skip"; \
		else echo "warning: podman/debootstrap missing (apt-get install $(CONTAINER_PACKAGES)); the image tests will skip"; fi; }

image-test: install container-tools
	TRITIUM_IMAGE_TESTS=1 timeout 2400 $(PY) -m pytest -q tests/test_deploy_image.py tests/test_deploy_compose.py $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) core/tools/check_layers.py

bench: install examples
	$(PY) bench/run_all.py

# Regenerates the committed *_pb2.py files from our .proto files (a test checks they are current).
proto: install
	$(PY) core/tools/gen_protos.py
	$(PY) plugins/frontend_grpc/tools/gen_protos.py

clean:
	rm -rf $(VENV) $(EXAMPLES)
