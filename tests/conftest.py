"""Shared fixtures of the end-to-end tests: real ``tritium serve`` processes and the example repository.

Every test here talks to a real server process over the network with NVIDIA's unmodified clients. Keep
additions in their own section below, one per owner; fixtures stay generic (no protocol-specific code).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------------
# Real `tritium serve` processes (generic: HTTP, gRPC and metrics tests all use this).
# ------------------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port the OS says is free on 127.0.0.1 now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports the OS says are free on 127.0.0.1 now: all held at once while they are
    chosen (ports taken one after the other can come back equal once each is released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(name="free_ports")
def free_ports_fixture() -> Callable[[int], list[int]]:
    """:func:`free_ports`, for the test modules (they cannot import this one)."""
    return free_ports


def installed_plugins() -> set[str]:
    """Entry-point names of the installed Tritium plugins."""
    return {ep.name for ep in entry_points(group="tritium.plugins")}


class TritiumServe:
    """A running ``tritium serve`` process on free loopback ports.

    ``grpc_port`` / ``http_port`` / ``metrics_port`` are None when that plugin is not installed (its flags
    are then not passed). ``log()`` returns what the process printed so far.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        extra_plugins: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        plugins = installed_plugins()
        http_port, grpc_port, metrics_port = free_ports(3)
        self.http_port = http_port if "frontend_http" in plugins else None
        self.grpc_port = grpc_port if "frontend_grpc" in plugins else None
        self.metrics_port = metrics_port if "metrics_prometheus" in plugins else None
        flags = list(args)
        given = " ".join(flags)
        for flag, port in (
            ("--http-port", self.http_port),
            ("--grpc-port", self.grpc_port),
            ("--metrics-port", self.metrics_port),
        ):
            if port is not None and flag not in given:
                flags.append(f"{flag}={port}")
        for flag in ("--http-address", "--grpc-address", "--metrics-address"):
            plugin_port = {"--http-address": self.http_port, "--grpc-address": self.grpc_port}.get(
                flag, self.metrics_port
            )
            if plugin_port is not None and flag not in given:
                flags.append(f"{flag}=127.0.0.1")
        # TRITIUM_TEST_WORKERS runs every test server with that many worker processes (make test reruns the
        # end-to-end suites with 2: multi-process mode must behave exactly like one process).
        if "--workers" not in given:
            flags.append(f"--workers={os.environ.get('TRITIUM_TEST_WORKERS', '1')}")
        # TRITIUM_TEST_GRPC_TRANSPORT serves gRPC with that transport (make test reruns the gRPC suites on
        # grpcio, the alternative to the default native transport).
        transport = os.environ.get("TRITIUM_TEST_GRPC_TRANSPORT")
        if transport and "--grpc-transport" not in given:
            flags.append(f"--grpc-transport={transport}")
        # --plugin loads modules no entry point installs, e.g. the kernel's tritium.testing.fakes backends.
        plugin_flags = [f"--plugin={module}" for module in extra_plugins]
        command = [str(Path(sys.executable).parent / "tritium"), "serve", *plugin_flags, *flags]
        self.command = command
        self.log_path = log_path
        self._log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def require(self, *frontends: str) -> None:
        """Skip the calling test unless every frontend named (``"http"``, ``"grpc"``) is installed, so listening."""
        for frontend in frontends:
            if (self.http_port if frontend == "http" else self.grpc_port) is None:
                pytest.skip(f"frontend_{frontend} is not installed")

    def wait_ready(self, timeout: float = 90.0) -> TritiumServe:
        """Wait until every frontend port accepts connections (frontends start after the models load)."""
        ports = [p for p in (self.http_port, self.grpc_port) if p is not None]
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritium serve exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tritium serve not ready after {timeout}s:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.1)
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful stop), then SIGKILL after ``timeout``; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log_file.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def tritium_serve_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``start(*args, extra_plugins=(), env=None, timeout=90) -> TritiumServe`` (ready); every process
    started is stopped at the end of the session (stop one earlier with ``.stop()``)."""
    started: list[TritiumServe] = []
    logs = tmp_path_factory.mktemp("tritium-serve-logs")

    def start(
        *args: str, extra_plugins: Sequence[str] = (), env: dict[str, str] | None = None, timeout: float = 90.0
    ) -> TritiumServe:
        server = TritiumServe(args, log_path=logs / f"serve-{len(started)}.log", extra_plugins=extra_plugins, env=env)
        started.append(server)
        return server.wait_ready(timeout)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def example_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model repository (examples/build_repository.py): simple, simple_string, identity_fp32, ..."""
    repo = tmp_path_factory.mktemp("example-repository") / "models"
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo)], check=True)
    return repo


# ------------------------------------------------------------------------------------------------------
# An in-process `tritium.Server` over the requesting module's `repo` fixture, on an event loop of its own.
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inprocess(repo: Path) -> Iterator[tuple[object, asyncio.AbstractEventLoop]]:
    """(server, loop): a started ``tritium.Server`` serving the module's ``repo`` fixture, and the loop that
    runs it (``loop.run_until_complete(server.service.infer(...))``)."""
    from tritium import Server, ServerOptions

    loop = asyncio.new_event_loop()
    server = Server(ServerOptions(model_repositories=(str(repo),)))
    loop.run_until_complete(server.start())
    try:
        yield server, loop
    finally:
        loop.run_until_complete(server.stop())
        loop.close()


# ------------------------------------------------------------------------------------------------------
# TLS certificates (HTTPS and container tests): a CA, a server certificate and a client certificate.
# ------------------------------------------------------------------------------------------------------


def write_tls_certificates(out: Path, server_names: Sequence[str] = ("localhost", "127.0.0.1")) -> dict[str, Path]:
    """Write ``ca``, ``server`` and ``client`` certificates (``.crt``) and keys (``.key``) into ``out``:
    EC P-256, signed by the CA, valid for a day; the server's for ``server_names`` (DNS names or IPs)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def subject_name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def alt_name(text: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            return x509.DNSName(text)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = subject_name("tritium-test-ca")
    paths: dict[str, Path] = {}
    usages = {"ca": None, "server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
    for stem, usage in usages.items():
        key = ca_key if stem == "ca" else ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(ca_name if stem == "ca" else subject_name(stem))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=stem == "ca", path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if stem == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([alt_name(n) for n in server_names]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        paths[stem] = out / f"{stem}.crt"
        paths[f"{stem}_key"] = out / f"{stem}.key"
        paths[stem].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{stem}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        paths[f"{stem}_key"].chmod(0o644)  # readable by a container's non-root user through a bind mount
    return paths


@pytest.fixture(scope="session")
def tls_certificate_factory() -> object:
    """:func:`write_tls_certificates` itself, for tests that need a second, unrelated CA."""
    return write_tls_certificates


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`write_tls_certificates` in a session temporary folder."""
    return write_tls_certificates(tmp_path_factory.mktemp("tls-certificates"))


# ------------------------------------------------------------------------------------------------------
# Backend end-to-end tests (ONNX, TensorFlow, PyTorch): an identity model per datatype, over HTTP and gRPC.
# ------------------------------------------------------------------------------------------------------


def identity_round_trip(
    served: TritiumServe,
    protocol: str,
    model: str,
    wire: str,
    *,
    input_name: str = "INPUT0",
    output_name: str = "OUTPUT0",
    utf8_only: bool = True,
) -> None:
    """Send values of datatype ``wire`` that every client carries exactly (``tritium.testing.builders.wire_sample``:
    full range; BYTES not UTF-8 too unless ``utf8_only``) to the identity model ``model`` through tritonclient
    over ``protocol`` (``"http"``: binary tensors, shape [2, 4]; ``"grpc"``: shape [3, 2]) and check that the
    same values come back. Skips when that frontend is not installed."""
    from tritium.testing.builders import assert_same_array, wire_sample

    served.require(protocol)
    if protocol == "http":
        import tritonclient.http as http

        x = wire_sample(wire, (2, 4), 1, utf8_only=utf8_only)
        tensor = http.InferInput(input_name, list(x.shape), wire)
        tensor.set_data_from_numpy(x, binary_data=True)
        with http.InferenceServerClient(served.http_url) as client:
            result = client.infer(model, [tensor])
    else:
        import tritonclient.grpc as grpc

        x = wire_sample(wire, (3, 2), 2, utf8_only=utf8_only)
        tensor = grpc.InferInput(input_name, list(x.shape), wire)
        tensor.set_data_from_numpy(x)
        with grpc.InferenceServerClient(served.grpc_address) as client:
            result = client.infer(model, [tensor])
    assert_same_array(result.as_numpy(output_name), x)


@pytest.fixture(scope="session", name="identity_round_trip")
def identity_round_trip_fixture() -> object:
    """:func:`identity_round_trip` (test modules cannot import this conftest under --import-mode=importlib)."""
    return identity_round_trip


# ------------------------------------------------------------------------------------------------------
# Container images (`make image-test`): podman, the test-only bases and the CPU image built from this tree.
# ------------------------------------------------------------------------------------------------------

IMAGE_TESTS_ENV = "TRITIUM_IMAGE_TESTS"
TEST_DEBIAN_BASE = "localhost/tritium-test/debian:bookworm"
TEST_CA_BASE = "localhost/tritium-test/debian-ca:bookworm"
TEST_PYTHON_BASE = "localhost/tritium-test/python:3.11"
TEST_PROMETHEUS_IMAGE = "localhost/tritium-test/prometheus:bookworm"
CPU_IMAGE = "localhost/tritium-test/tritium:cpu"


class Podman:
    """Runs ``podman`` with a containers.conf that works on the build machines (runc, explicit ulimits within
    this host's hard limits), and removes every container it started (:meth:`cleanup`)."""

    def __init__(self, conf_dir: Path) -> None:
        import resource

        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
        conf = conf_dir / "containers.conf"
        conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
        )
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.containers: list[str] = []

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def run_detached(self, *args: str) -> str:
        """``podman run -d`` with a unique name; returns the name (removed by :meth:`cleanup`)."""
        name = f"tritium-test-{os.getpid()}-{len(self.containers)}"
        self.containers.append(name)
        self("run", "-d", "--name", name, *args)
        return name

    def wait_healthy(self, name: str, url: str, timeout: float = 120.0, **kw: object) -> None:
        """Poll ``url`` until it answers 200; the container's log on failure."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2, **kw).status_code == 200:  # type: ignore[arg-type]
                    return
            except requests.RequestException:
                pass
            if self("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
                break
            time.sleep(0.5)
        raise AssertionError(f"{name} not ready at {url}:\n{self('logs', name, check=False).stderr[-4000:]}")

    def cleanup(self) -> None:
        for name in self.containers:
            self("rm", "-f", "-t", "0", name, check=False, timeout=60)
        self.containers.clear()


def podman_unavailable() -> str | None:
    """Why podman cannot run containers here (None when it can)."""
    import shutil

    if os.environ.get(IMAGE_TESTS_ENV) != "1":
        return f"container image tests run with `make image-test` ({IMAGE_TESTS_ENV}=1)"
    if shutil.which("podman") is None:
        return "podman is not installed (make image-test installs it with apt-get when run as root)"
    try:
        info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman cannot run here: {exc}"
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """A :class:`Podman`; the test is skipped, with the reason, when podman cannot run containers here."""
    reason = podman_unavailable()
    if reason is not None:
        pytest.skip(reason)
    runner = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture(scope="session")
def test_bases(podman: Podman) -> dict[str, str]:
    """The test-only Debian (with the build CA, no Python), Python and Prometheus images
    (deploy/testing/build-test-bases.sh)."""
    import shutil

    script = ROOT / "deploy" / "testing" / "build-test-bases.sh"
    names = {
        "DEBIAN_BASE": TEST_DEBIAN_BASE,
        "CA_BASE": TEST_CA_BASE,
        "PYTHON_BASE": TEST_PYTHON_BASE,
        "PROMETHEUS_IMAGE": TEST_PROMETHEUS_IMAGE,
    }

    def build(*args: str) -> None:
        result = subprocess.run(
            [str(script), *args], env={**podman.env, **names}, capture_output=True, text=True, timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"building the test base images failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")

    if podman("image", "exists", TEST_DEBIAN_BASE, check=False).returncode != 0 and not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (make image-test installs it with apt-get when run as root)")
    build("debian-only")
    probe = podman("run", "--rm", TEST_DEBIAN_BASE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()[-500:]}")
    build()
    return {"debian": TEST_CA_BASE, "python": TEST_PYTHON_BASE, "prometheus": TEST_PROMETHEUS_IMAGE}


@pytest.fixture(scope="session")
def cpu_image(podman: Podman, test_bases: dict[str, str]) -> str:
    """deploy/docker/Dockerfile built from this tree on the test Python base (layers cached between runs)."""
    started = time.monotonic()
    podman(
        "build", "--format", "docker", "--layers", "-f", str(ROOT / "deploy" / "docker" / "Dockerfile"),
        "--build-arg", f"BASE_IMAGE={test_bases['python']}", "-t", CPU_IMAGE, str(ROOT), timeout=1500,
    )
    print(f"built {CPU_IMAGE} in {time.monotonic() - started:.1f} s")
    return CPU_IMAGE
