"""Network helpers shared by the tests (all on 127.0.0.1; nothing leaves the machine)."""
import socket


def closed_port():
    """A port on 127.0.0.1 with nothing listening: connections to it are refused at once."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port
