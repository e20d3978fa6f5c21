"""TLS for client connections as a config switch, through the real client against a real
3-replica cluster, with a certificate generated for the test."""

from __future__ import annotations

import socket
import ssl

import pytest

from net import iggy
from net.client import ClientError
from net.iggy import Code, Operation
from net.operations import MetadataClient
from tests.integration.test_cluster import Cluster
from tests.security.tls_cert import client_context, make_cert


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(directory)
    cluster = Cluster(str(directory / "cluster"))
    for config in cluster.configs:
        text = open(config).read()
        text = text.replace("[security]\n", f'[security]\ntls = true\ntls_cert_file = "{cert}"\n'
                                            f'tls_key_file = "{key}"\n')
        open(config, "w").write(text)
    for index in range(3):
        cluster.start(index)
    yield cluster, cert
    cluster.stop()


def test_the_client_works_over_tls_and_plain_text_is_refused(tls_cluster):
    cluster, cert = tls_cluster
    client = cluster.client(timeout_s=2.0, deadline_s=30.0, tls=client_context(cert))
    client.create_stream("over-tls")
    assert client.get_stream("over-tls").name == "over-tls"
    client.close()
    plain = MetadataClient(list(cluster.addresses), timeout_s=1.0, deadline_s=2.0)
    with pytest.raises(ClientError):
        plain.ping()
    plain.close()
    raw = socket.create_connection(cluster.addresses[0], timeout=10)
    raw.sendall(iggy.request_frame(b"\x01" * 16, 0, 1, Operation.NON_REPLICATED, b"",
                                   code=Code.PING))
    try:
        answer = raw.recv(4096)
    except ConnectionResetError:
        answer = b""
    assert len(answer) < 256, "a plain-text request got an Iggy reply from a TLS listener"
    raw.close()


def test_a_client_that_does_not_trust_the_certificate_refuses_the_replica(tls_cluster):
    cluster, _cert = tls_cluster
    untrusting = ssl.create_default_context()  # the system roots: the test cert is not there
    client = MetadataClient(list(cluster.addresses), timeout_s=1.0, deadline_s=2.0,
                            tls=untrusting)
    with pytest.raises(ClientError) as refused:
        client.ping()
    assert "TLS" in str(refused.value) or "certificate" in str(refused.value)
    client.close()
