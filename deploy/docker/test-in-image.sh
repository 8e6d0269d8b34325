#!/bin/sh
# Run Tritium's end-to-end tests against the tritium installed in an image (CI's "test inside the image").
# Inside the image, from a checkout of the same commit:  deploy/docker/test-in-image.sh [PYTEST ARGS]
# The test tools go into a venv in /tmp (the only writable place) that sees the image's packages; the
# tests start the image's own `tritium` command. Tests of plugins the image leaves out are skipped.
set -eu
cd "$(dirname "$0")/../.."
VENV=${TEST_VENV:-/tmp/test-venv}
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv "$VENV"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
image_site=$(/opt/tritium/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$image_site" > "$site/tritium-image.pth"
ln -sf /opt/tritium/bin/tritium "$VENV/bin/tritium"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt cryptography
# By default the end-to-end tests that serve only what the default CPU image holds (the example repository
# also has TensorFlow, PyTorch and Python models); name others, with an image built with their plugins.
if [ "$#" -eq 0 ]; then
    set -- tests/test_http_tls_e2e.py tests/test_grpc_security_e2e.py tests/test_server_process_e2e.py
fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
