"""JupyterHub for a socketlessons class on ONE host: copy this file, read every "CHANGE" line.

Tried end to end with JupyterHub 6, nbgitpuller 1.3 and configurable-http-proxy 5 (npm):
``tests/test_hub.py`` starts a hub with this very file, logs students in, hands out the
nbgitpuller link, runs lessons in their kernels and re-pulls. Start it with

    jupyterhub -f jupyterhub_config.py

Two fixes a single-host hub needs under load (both seen failing without them):

1. **The spawner's port race.** JupyterHub picks each student server's port by binding port 0
   and closing it; the server binds it 20–60 s later on a busy host, and by then another process
   can have taken it ("port … is not available"; jupyterhub#1830, #3005, #5208). The
   ``pre_spawn_hook`` below gives each server a port BELOW the ephemeral range (which port 0
   never hands out), checked free.
2. **The kernel port race.** A kernel dies with ``ZMQError: Address already in use`` and the
   restarter retries the same ports (jupyter_client caches them). Kernels on the ``ipc``
   transport (Unix sockets) have no TCP ports at all.

Isolation: on one host every student's code can connect to every other student's loopback
ports (one network namespace). The lessons never do (port 0, and their demos only talk to
addresses they opened), but a curious student can. Per-student isolation needs one container
or pod per student: see ``values.yaml`` beside this file (Zero to JupyterHub on Kubernetes).

The environment variables ``SOCKETLESSONS_HUB_*`` exist for the test; a teacher can ignore them.
"""

from __future__ import annotations

import os
import pathlib
import socket
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

#: Where the hub keeps its database, cookie secret and the students' homes. CHANGE for your host.
HUB_DIR = pathlib.Path(os.environ.get("SOCKETLESSONS_HUB_DIR", "/srv/socketlessons-hub"))
HUB_DIR.mkdir(parents=True, exist_ok=True)

# ---- the hub and its proxy -------------------------------------------------------------------
# CHANGE: students reach the hub through a TLS reverse proxy (nginx, Caddy) in front of this
# address; the hub itself listens on loopback only.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("SOCKETLESSONS_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("SOCKETLESSONS_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('SOCKETLESSONS_HUB_PROXY_API_PORT', '8001')}"
# The npm package (node is needed): the pure-Python port of the proxy allows 10 requests in
# flight and answered "503 Timeout in request queue" at 30 students.
c.ConfigurableHTTPProxy.command = [os.environ.get("SOCKETLESSONS_HUB_PROXY", "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")

# ---- who may log in ----------------------------------------------------------------------------
# CHANGE: the dummy authenticator lets anyone in with any password: a rehearsal only. Use your
# institution's login (oauthenticator, ltiauthenticator) or nativeauthenticator.
c.JupyterHub.authenticator_class = os.environ.get("SOCKETLESSONS_HUB_AUTHENTICATOR", "dummy")
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {os.environ.get("SOCKETLESSONS_HUB_ADMIN", "teacher")}

# A token for scripts (creating students, starting servers, reading progress): set it in the
# environment, never in this file.
if os.environ.get("SOCKETLESSONS_HUB_SERVICE_TOKEN"):
    c.JupyterHub.services = [{"name": "teacher-scripts", "api_token": os.environ["SOCKETLESSONS_HUB_SERVICE_TOKEN"]}]
    c.JupyterHub.load_roles = [{"name": "teacher-scripts", "services": ["teacher-scripts"],
                                "scopes": ["admin:users", "admin:servers", "list:users", "read:users"]}]

# ---- one Jupyter server per student --------------------------------------------------------------
# CHANGE: the simple spawner runs every student as the hub's own system user (no system users
# to create, no isolation between students). SystemdSpawner adds per-student limits;
# DockerSpawner or KubeSpawner add isolation.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(HUB_DIR / "home" / "{username}")
c.Spawner.cmd = [str(pathlib.Path(sys.executable).with_name("jupyterhub-singleuser"))]
c.Spawner.default_url = "/lab"
c.Spawner.args = [
    "--KernelManager.transport=ipc",  # fix 2: no kernel TCP ports to race for
    # The idle culler built into each student's server: kernels idle for an hour stop, and a
    # server with nothing running for two hours shuts down (its memory goes back to the class).
    "--MappingKernelManager.cull_idle_timeout=3600",
    "--MappingKernelManager.cull_interval=300",
    "--ServerApp.shutdown_no_activity_timeout=7200",
]
if hasattr(os, "geteuid") and os.geteuid() == 0:
    c.Spawner.args.append("--allow-root")  # a container running as root (CI); avoid on a real host
# Measured on 2 cores: 30 servers started at once are all up in 46–54 s.
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240
# Sized from the measured costs (about 250 MiB per student: server + one lesson kernel; lesson 03
# opens up to a few thousand sockets). Enforced only by spawners that can (systemd, docker, k8s).
c.Spawner.mem_limit = "1G"
c.Spawner.cpu_limit = 1.0

#: Student servers get ports from here: below Linux's ephemeral range (32768–60999), which port 0
#: and the lessons' helper servers draw from. CHANGE if something else on your host uses it.
PORTS = range(int(os.environ.get("SOCKETLESSONS_HUB_FIRST_PORT", "20000")),
              int(os.environ.get("SOCKETLESSONS_HUB_FIRST_PORT", "20000")) + 2000)
_taken: set[int] = set()


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _short_runtime_dir(name: str) -> str:
    """Kernels' Unix sockets live here: a socket path holds at most ~103 bytes, so keep it short."""
    folder = HUB_DIR / "rt" / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(folder)


def pre_spawn_hook(spawner) -> None:  # noqa: ANN001 - JupyterHub's Spawner
    """Fix 1: a port below the ephemeral range, checked free, for this student's server."""
    previous = getattr(spawner, "port", 0)
    _taken.discard(previous)
    for port in PORTS:
        if port not in _taken and _port_is_free(port):
            _taken.add(port)
            spawner.port = port
            break
    else:
        raise RuntimeError(f"no free port left in {PORTS.start}-{PORTS.stop - 1} for {spawner.user.name}")
    spawner.environment["JUPYTER_RUNTIME_DIR"] = _short_runtime_dir(spawner.user.name)


c.Spawner.pre_spawn_hook = pre_spawn_hook
