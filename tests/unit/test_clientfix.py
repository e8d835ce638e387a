import socket
from types import SimpleNamespace

import pytest
from kafka.errors import KafkaConnectionError
from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

from lagwatch.kafka import clientfix as kafkafix


@pytest.mark.parametrize("transport", [KafkaTCPTransport, KafkaSSLTransport])
def test_bytes_that_arrive_before_the_close_are_read_and_the_close_follows(
        transport: type) -> None:
    """A broker refusing a password answers and closes: the answer must reach the client."""
    kafkafix.apply()
    kafkafix.apply()  # idempotent: one wrapper, not two
    ours, broker = socket.socketpair()
    with ours, broker:
        ours.setblocking(False)
        broker.sendall(b"the refusal")
        broker.close()
        stub = SimpleNamespace(_sock=ours)
        assert transport._sock_recv(stub) == (b"the refusal", None)
        data, err = transport._sock_recv(stub)
        assert (data, type(err), str(err)) == (b"", KafkaConnectionError,
                                               "KafkaConnectionError: socket disconnected")
    assert transport.__dict__["_sock_recv"].__wrapped__.__name__ == "_sock_recv"
    assert not hasattr(transport.__dict__["_sock_recv"].__wrapped__, "lagwatch_fixed")
