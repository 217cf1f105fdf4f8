"""A TCP forwarder on 127.0.0.1 whose connections a test can really cut, and then let through again.

The app connects to the database through it. cut() closes every open connection and stops listening, so
new connections are refused — what the app sees when the database server goes away; restore() listens
again on the same port, as a restarted server would.
"""
import socket
import threading


class TcpProxy:
    def __init__(self, host, port):
        self.target = (host, port)
        self.connections = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))  # SO_REUSEADDR: the port can be reused
        self.port = self.listener.getsockname()[1]
        self._serve()

    def _serve(self):
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
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor's accept() at once (Linux), not at its timeout
        except OSError:  # elsewhere a listening socket cannot be shut down: the timeout wakes it
            pass
        self.listener.close()
        self.acceptor.join()  # until it has let go of the port, which restore() binds again
        with self.lock:
            for s in self.connections:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.connections = []

    def restore(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()

    def close(self):
        self.cut()
