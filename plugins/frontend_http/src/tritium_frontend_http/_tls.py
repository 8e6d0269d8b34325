"""HTTPS for the HTTP frontend: the server-side :class:`ssl.SSLContext` built from ``--http-ssl*`` files.

Serving TLS in the server itself means a deployment needs no sidecar or proxy to encrypt the REST endpoint;
with ``--http-ssl-mutual`` only clients holding a certificate from the configured CA get a connection at all.
"""

from __future__ import annotations

import ssl

from tritium import ConfigError
from tritium_frontend_http._settings import TlsSettings


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the certificate chain, verifying client certificates when mutual.

    Unreadable or mismatched files are a :class:`tritium.ConfigError` naming the flag, so the server refuses
    to start rather than serving plain text or failing on the first handshake.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.server_cert, tls.server_key)
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot read --http-server-cert/--http-server-key '{exc.filename}'") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use --http-server-cert '{tls.server_cert}' with --http-server-key '{tls.server_key}': {exc}"
        ) from None
    if tls.root_cert:
        try:
            context.load_verify_locations(cafile=tls.root_cert)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot read --http-root-cert '{tls.root_cert}': {exc}") from None
    context.verify_mode = ssl.CERT_REQUIRED if tls.mutual else ssl.CERT_NONE
    return context
