"""A throwaway self-signed certificate for 127.0.0.1, made with the `openssl` command line
(the `cryptography` package is not a dependency); tests that need one skip without openssl."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest


def make_cert(directory) -> tuple[str, str]:
    """(cert path, key path) of a new EC certificate valid for 127.0.0.1 and localhost."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to generate a test certificate")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_context(cert: str) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate."""
    context = ssl.create_default_context(cafile=cert)
    return context
