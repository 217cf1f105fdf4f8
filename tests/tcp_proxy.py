"""A TCP forwarder on 127.0.0.1 between the app and its database (or Redis): cut() is the server gone (connections
closed, new ones refused), restore() it back on the same port, hang() a server that accepts and never answers."""
import contextlib
import socket
import threading


def _shut(sock):
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


class TcpProxy:
    def __init__(self, host, port):
        self.target, self.connections, self.lock, self.port = (host, port), [], threading.Lock(), 0
        self.restore()

    def hang(self, drop_open=True):
        if drop_open:
            self.cut()
            self.restore(hanging=True)
        self.hanging = True  # open connections, if kept, forward nothing more

    def restore(self, hanging=False):
        self.hanging = hanging
        self.listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port again
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.1)
        self.acceptor = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        self.acceptor.start()

    def _accept(self, listener):
        while listener.fileno() != -1:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:  # closed by cut()
                return
            if self.hanging:  # accepted (as a listening server's kernel does), never answered
                with self.lock:
                    self.connections.append(client)
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.hanging:
                    sink.sendall(data)
        _shut(source)
        _shut(sink)

    def cut(self):
        _shut(self.listener)  # wakes the acceptor's accept() at once on Linux; elsewhere its timeout does
        self.listener.close()
        self.acceptor.join()  # until it has let go of the port, which restore() binds again
        with self.lock:
            for s in self.connections:
                _shut(s)
                s.close()
            self.connections = []

    close = cut
