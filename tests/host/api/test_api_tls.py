"""HTTPS for the API (uvicorn's TLS with a self-signed certificate, the CA pinned by the client) and the warning
when the API would serve plain HTTP on a non-loopback address."""
import json
import logging
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from host.api.config import ApiConfig
from host.api.server import warn_without_tls
from host.cli import main
from host.spec.errors import InputError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """(certfile, keyfile): a self-signed P-256 certificate for 127.0.0.1, made with `openssl req`."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", d / "key.pem", "-out", d / "cert.pem", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def test_https_with_the_ca_pinned(tokenized_gpt2, api_tools, cert):
    _, serving = api_tools
    with serving(tokenized_gpt2, ssl_certfile=cert[0], ssl_keyfile=cert[1]) as (_, _, _, _, base):
        url = base.replace("http://", "https://")
        pinned = ssl.create_default_context(cafile=str(cert[0]))
        with urllib.request.urlopen(url + "/v1/models", context=pinned, timeout=30) as r:
            assert json.loads(r.read())["data"][0]["id"] == "tiny"
        body = json.dumps({"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 4, "temperature": 0}).encode()
        req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=pinned, timeout=30) as r:
            assert json.loads(r.read())["choices"][0]["finish_reason"] in ("length", "stop")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # not trusted unpinned
            urllib.request.urlopen(url + "/health", context=ssl.create_default_context(), timeout=30)
        with pytest.raises((urllib.error.URLError, ConnectionError)):                 # no plain HTTP on it
            urllib.request.urlopen(base + "/health", timeout=30).read()


def test_tls_settings_are_checked(tokenized_gpt2, cert, tmp_path, capsys):
    with pytest.raises(InputError, match="needs its ssl certfile"):
        ApiConfig(model=tokenized_gpt2, llm_node="127.0.0.1:1", ssl_keyfile=cert[1])
    with pytest.raises(InputError, match="no such TLS file"):
        ApiConfig(model=tokenized_gpt2, llm_node="127.0.0.1:1", ssl_certfile=tmp_path / "missing.pem")
    assert main(["serve", "api", "--llm-node", "127.0.0.1:1", "--model", str(tokenized_gpt2),
                 "--ssl-keyfile", str(cert[1])]) == 2
    assert "needs its ssl certfile" in capsys.readouterr().err


@pytest.mark.parametrize("host, tls, warned", [("0.0.0.0", False, True), ("192.0.2.7", False, True),
                                               ("0.0.0.0", True, False), ("127.0.0.1", False, False),
                                               ("::1", False, False), ("localhost", False, False)])
def test_plain_http_on_a_non_loopback_address_warns(caplog, host, tls, warned):
    with caplog.at_level(logging.WARNING, logger="host.api.server"):
        warn_without_tls(host, tls)
    assert any("without TLS" in r.getMessage() for r in caplog.records) == warned
