"""The image's HEALTHCHECK: exit 0 when Tritium's ``/v2/health/ready`` answers 200, else 1.

The URL is ``TRITIUM_HEALTHCHECK_URL`` (default ``http://127.0.0.1:8000/v2/health/ready``). An ``https`` URL
is checked without verifying the certificate: the check runs inside the container against loopback, where
the certificate's names (made for the outside) need not match.
"""

import os
import ssl
import sys
import urllib.request

URL = os.environ.get("TRITIUM_HEALTHCHECK_URL", "http://127.0.0.1:8000/v2/health/ready")

try:
    context = ssl._create_unverified_context() if URL.startswith("https:") else None
    with urllib.request.urlopen(URL, timeout=4, context=context) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print(f"not ready: {exc}", file=sys.stderr)
    sys.exit(1)
