"""Start `python -m flask ...` (and gunicorn) in a fraction of the time: a fork server.

A new interpreter spends ~0.5 s of CPU importing Flask, SQLAlchemy, flask-jwt-extended and the rest before a step's
own code runs; the tests and notebooks start hundreds of `flask run` and `flask init-db` processes. So, on Linux, one
helper process per caller imports those libraries once and forks a child per command: the child is still a process
of its own, with its own environment, working folder, standard streams and exit status, running Flask's own command
line (`runpy`, as `python -m flask` does), and it imports the step package itself, from its own folder.

What a new interpreter takes from the environment at start-up (every PYTHON* variable, the locale) is the fork
server's own, so there is one fork server per set of those values. A fork server can also be shared (`shared`): the
processes given its socket in TUTORIAL_FORK_SERVER (the notebooks' kernels, under the tests) each get a session of
it, forked, instead of a server of their own, when their start-up values are its own. Elsewhere (Windows, macOS, where forking a
process that has loaded system frameworks is unsafe), with TUTORIAL_NO_FORK=1, or for any other program, `popen`
and `run` are subprocess.Popen and subprocess.run.
"""
import atexit
import contextlib
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MODULES = ("flask", "gunicorn")  # what the fork server runs: `python -m flask ...`; anything else starts as usual
# Imported once by the fork server: what the steps import, never a step itself (each child imports its own copy).
PRELOAD = (
    "flask", "flask.cli", "werkzeug.serving", "werkzeug.debug", "click", "dotenv", "flask_restful", "flask_cors",
    "flask_sqlalchemy", "sqlalchemy", "sqlalchemy.dialects.sqlite", "sqlalchemy.ext.asyncio", "flask_jwt_extended",
    "jwt", "cryptography.hazmat.primitives.asymmetric.ed25519", "cryptography.hazmat.primitives.serialization",
    "redis", "flask_limiter", "limits.storage", "pymysql", "psycopg", "json", "logging.config", "uuid", "secrets",
    "gunicorn.app.wsgiapp", "gunicorn.arbiter", "gunicorn.workers.sync", "gunicorn.glogging",
)
STARTUP = ("LANG", "LC_ALL", "LC_CTYPE")  # read at start-up, as every PYTHON* variable is
ADDRESS = "TUTORIAL_FORK_SERVER"  # the socket of a shared fork server (`shared`)


def _startup_values(env):
    return sorted([k, v] for k, v in env.items() if k.startswith("PYTHON") or k in STARTUP)


def available():
    return sys.platform == "linux" and hasattr(socket, "send_fds") and not os.environ.get("TUTORIAL_NO_FORK")


def _forkable(cmd):
    """The module of `[sys.executable, "-m", module, ...]` if the fork server runs it, else None."""
    if len(cmd) >= 3 and cmd[0] == sys.executable and cmd[1] == "-m" and cmd[2] in MODULES and available():
        return cmd[2]
    return None


def popen(cmd, cwd, env, stdin=None, stdout=None, stderr=None, start_new_session=False):
    """subprocess.Popen(cmd, cwd=cwd, env=env, stdin=stdin, ...), forked if possible. stdin, stdout: a file object,
    a descriptor or None (this process's); stderr: the same, or subprocess.STDOUT."""
    if _forkable(cmd) is None:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                                start_new_session=start_new_session)
    fds = [_fd(stdin, 0), _fd(stdout, 1)]
    fds.append(fds[1] if stderr == subprocess.STDOUT else _fd(stderr, 2))
    return _server(env).spawn(cmd, cwd, env, fds, start_new_session)


def _fd(stream, default):
    return default if stream is None else stream if isinstance(stream, int) else stream.fileno()


def run(cmd, cwd, env, timeout):
    """subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True (UTF-8), timeout=timeout), forked if possible."""
    if _forkable(cmd) is None:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = popen(cmd, cwd, env, stdout=out, stderr=err)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", errors="replace"))
    return subprocess.CompletedProcess(cmd, proc.returncode, *texts)


class ForkedProcess:
    """The part of subprocess.Popen the callers use, for a child of the fork server."""

    def __init__(self, server, args, pid):
        self.server, self.args, self.pid, self.returncode = server, args, pid, None

    def poll(self):
        if self.returncode is None:
            self.returncode = self.server.request({"poll": self.pid})["returncode"]
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:  # not reaped yet: the pid is still this child's
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class Client:
    """This process's connection to one fork server (a socket pair), or to a session of a shared one (its socket's
    address); one request at a time."""

    def __init__(self, env, address=None):
        if address:  # OSError if it is gone, or if its start-up values are not these
            self.proc, self.sock = None, socket.socket(socket.AF_UNIX)
            self.sock.connect(address)
            self.sock.sendall(json.dumps(_startup_values(env)).encode() + b"\n")
            self.lock, self.file = threading.Lock(), self.sock.makefile("rb")
            if self.file.readline() != b'"ok"\n':
                self.close()
                raise ConnectionRefusedError(f"the fork server at {address} starts interpreters set up otherwise")
            return
        ours, theirs = socket.socketpair()
        # A session of its own: a notebook kernel that ends does not wait for it as for a child still running (the
        # socket's end stops it and its children, however its caller ends), and Ctrl+C in a terminal stops the caller.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tutorial.launcher", str(theirs.fileno())], pass_fds=[theirs.fileno()],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        )
        theirs.close()
        self.sock, self.lock = ours, threading.Lock()
        self.file = ours.makefile("rb")

    def request(self, message, fds=()):
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(message).encode() + b"\n"], list(fds))
            line = self.file.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (exit status {self.proc.wait() if self.proc else '?'})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the fork server could not start {message.get('args')}: {answer['error']}")
        return answer

    def spawn(self, cmd, cwd, env, fds, new_session):
        message = {"args": cmd[3:], "module": cmd[2], "cwd": str(cwd), "env": dict(env), "new_session": new_session}
        pid = self.request(message, fds)["pid"]
        return ForkedProcess(self, cmd, pid)

    def close(self):
        self.sock.close()  # the server stops its children that still run, then ends
        self.file.close()
        if self.proc:
            self.proc.wait(timeout=10)


_clients = {}
_clients_lock = threading.Lock()


def _server(env):
    key = json.dumps(_startup_values(env))
    with _clients_lock:
        if key not in _clients:
            try:
                _clients[key] = Client(env, os.environ.get(ADDRESS))
            except OSError:  # none shared, or not for these values: one of its own
                _clients[key] = Client(env)
            atexit.register(_clients[key].close)
        return _clients[key]


# The fork server itself ------------------------------------------------------------------------------------


@contextlib.contextmanager
def shared(env):
    """A fork server for other processes (started with `env`, their own): yields the entries to add to their
    environment ({ADDRESS: its socket}; {} where no fork server runs), and stops it at the end."""
    if not available():
        yield {}
        return
    folder = tempfile.mkdtemp(prefix="fork-server-")
    address = os.path.join(folder, "socket")
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-m", "tutorial.launcher", str(theirs.fileno()), address],
                            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    theirs.close()
    try:
        if ours.recv(16) != b"listening\n":  # its libraries imported, its socket open
            raise RuntimeError(f"the shared fork server did not start (exit status {proc.wait()})")
        yield {ADDRESS: address}
    finally:
        ours.close()  # it stops listening; sessions still connected end with their callers
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _preload():
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:  # not installed here (psycopg on an odd platform, say): the child imports what it needs
            pass
    assert threading.active_count() == 1, "a fork server must not run threads: a child would inherit their locks"


def listen(fd, address):
    """A shared fork server: for each process that connects with its own start-up values, a session (`serve`) in a
    child of its own, forked; until the process that started it closes `fd`."""
    _preload()
    owner, listener = socket.socket(fileno=fd), socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen()
    owner.sendall(b"listening\n")
    values, sessions = _startup_values(os.environ), set()
    while owner not in select.select([owner, listener], [], [])[0]:  # the owner only ever closes its end
        conn, _ = listener.accept()
        with conn.makefile("rb") as asked:  # the caller sends nothing more before the answer
            same = json.loads(asked.readline() or b"null") == values
        if not same:
            conn.sendall(b'"no"\n')
        elif (pid := os.fork()) == 0:
            owner.close()
            listener.close()
            conn.sendall(b'"ok"\n')
            serve(conn.detach())
            os._exit(0)
        else:
            sessions.add(pid)
        conn.close()
        sessions = {pid for pid in sessions if os.waitpid(pid, os.WNOHANG)[0] == 0}  # reap the ended ones


def serve(fd):
    sock = socket.socket(fileno=fd)
    children, ended = set(), {}
    try:
        while True:
            line, fds = _receive(sock)
            if line is None:
                break
            message = json.loads(line)
            if "poll" in message:
                pid = message["poll"]
                if pid not in ended:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        ended[pid] = os.waitstatus_to_exitcode(status)
                        children.discard(pid)
                answer = {"returncode": ended.get(pid)}
            else:
                try:
                    pid = os.fork()
                except OSError as error:
                    answer = {"error": str(error)}
                else:
                    if pid == 0:
                        sock.close()
                        _child(message, fds)  # never returns
                    children.add(pid)
                    answer = {"pid": pid}
            for received in fds:
                os.close(received)
            sock.sendall(json.dumps(answer).encode() + b"\n")
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:  # the caller has gone: its servers go too
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _receive(sock):
    """One request line and the descriptors sent with it; (None, []) once the caller has closed its end."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
    if not data:
        return None, []
    while not data.endswith(b"\n"):  # a long environment may come in several pieces
        more = sock.recv(1 << 20)
        if not more:
            return None, []
        data += more
    return data, fds


def _child(message, fds):
    """In the forked child: become `python -m <module> <args>` in its folder, environment and streams."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        if message["new_session"]:
            os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
        for stream in (sys.stdout, sys.stderr):  # buffered by line on a terminal, as a new interpreter's are
            if not stream.write_through:
                stream.reconfigure(line_buffering=stream.isatty() or stream is sys.stderr)
        os.chdir(message["cwd"])
        os.environ.clear()
        os.environ.update(message["env"])
        sys.path[0] = os.getcwd()  # `python -m` puts the working folder first
        import importlib

        importlib.invalidate_caches()  # files written since the fork server started (a learner's copy) are seen
        sys.argv = [message["module"], *message["args"]]
        runpy.run_module(message["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 -- printed as an interpreter would, then the exit status 1
        import traceback

        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # what the interpreter runs at exit (logging.shutdown flushes the logs)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        listen(int(sys.argv[1]), sys.argv[2])
    else:
        _preload()
        serve(int(sys.argv[1]))
    os._exit(0)  # nothing to flush: tearing down every module it imported would take the caller ~0.5 s to wait for
