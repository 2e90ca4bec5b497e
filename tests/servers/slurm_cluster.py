"""A real one-node Slurm cluster from Debian's packages, for the tests marked ``slurm``.

munged, slurmctld and slurmd run as subprocesses of the test (stopped by their PIDs). The
Slurm daemons listen on 0.0.0.0 with no bind option, so they run inside a loopback-only
network namespace (``ip netns add``; ``lo`` up with 127.0.0.1 and 127.0.0.2, the second
because Slurm's getaddrinfo with AI_ADDRCONFIG fails when lo has only 127.0.0.1), entered
with ``nsenter --net=/run/netns/NS`` (``ip netns exec`` remounts /sys and slurmd dies:
"No filesystem mounted on /sys/fs/cgroup"). The namespace is deleted at the end.

The clients (sbatch, squeue, scontrol, scancel) must run inside the namespace too: the
cluster writes a ``bin/`` of wrappers that ``nsenter`` into it and exec the real ones;
:meth:`SlurmCluster.env` puts that folder first on PATH and sets ``SLURM_CONF``, so
submitit (which calls ``sbatch``/``scancel`` by name) and ``mlperf-pilot sweep`` use the
cluster unchanged. munged listens on its own socket in the cluster's folder, never the
system's.

``python tests/servers/slurm_cluster.py`` starts one, runs a 4-task array and stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "scancel",
            "nsenter", "ip")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


class ClusterUnavailable(RuntimeError):
    """Slurm cannot run here (packages missing, no root, no namespaces); the reason."""


def why_unavailable() -> str | None:
    """None when a cluster can be started here, else why not (a skip reason)."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return (f"Slurm's Debian packages are not installed (missing {', '.join(missing)}): "
                f"apt-get install {' '.join(PACKAGES)}")
    if os.geteuid() != 0:
        return "a Slurm test cluster needs root (network namespaces, munged, slurmd)"
    return None


class SlurmCluster:
    """One node ``vm`` (NodeAddr 127.0.0.1) with ``cpus`` CPUs, partition ``debug``."""

    def __init__(self, root: Path, *, cpus: int | None = None) -> None:
        self.root = root
        self.cpus = cpus or max(os.cpu_count() or 1, 1)
        self.netns = f"mlpp-slurm-{uuid.uuid4().hex[:8]}"
        self.bin_dir = root / "bin"
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.node = socket.gethostname().split(".")[0]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._netns_made = False

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout_s: float = 60.0) -> SlurmCluster:
        reason = why_unavailable()
        if reason:
            raise ClusterUnavailable(reason)
        try:
            self._make_netns()
            self._write_files()
            self._start_munge()
            self._start_daemons()
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the daemons by PID (TERM, then KILL), delete the namespace."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        if self._netns_made:
            subprocess.run(["ip", "netns", "delete", self.netns], check=False,
                           capture_output=True)
            self._netns_made = False

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------ clients

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose ``sbatch``/``squeue``/... talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["SLURM_CONF"] = str(self.conf)
        return env

    def client(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin_dir / argv[0]), *argv[1:]], env=self.env(),
                              capture_output=True, text=True, check=check, timeout=60)

    # ------------------------------------------------------------------------ helpers

    def _make_netns(self) -> None:
        made = subprocess.run(["ip", "netns", "add", self.netns], capture_output=True,
                              text=True)
        if made.returncode != 0:
            raise ClusterUnavailable(
                f"network namespaces are not allowed here: {made.stderr.strip()}")
        self._netns_made = True
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", self.netns, "addr", "add", "127.0.0.2/32", "dev", "lo"],
                       check=True)

    def _nsenter(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def _write_files(self) -> None:
        for sub in ("state", "spool", "log", "munge", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        log = self.root / "log"
        self.conf.write_text("\n".join([
            "ClusterName=mlpp",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "KillWait=5",
            "MinJobAge=600",
            "SchedulerParameters=sched_interval=1",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP "
            "OverSubscribe=NO",
            "",
        ]))
        for name in CLIENTS:
            real = shutil.which(name)
            if real is None:
                continue
            wrapper = self.bin_dir / name
            wrapper.write_text("#!/bin/sh\n"
                               f"export SLURM_CONF={self.conf}\n"
                               f"exec {' '.join(self._nsenter())} {real} \"$@\"\n")
            wrapper.chmod(0o755)

    def _spawn(self, argv: list[str], name: str) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (kept open)
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True))
        out.close()

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        self._spawn(["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                     f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
                     f"--seed-file={munge / 'munge.seed'}", f"--log-file={munge / 'munged.log'}"],
                    "munged")
        deadline = time.monotonic() + 15
        while not self.munge_socket.exists():
            if self._procs[-1].poll() is not None or time.monotonic() > deadline:
                raise ClusterUnavailable(f"munged did not start: {self._tail('munged.out')}")
            time.sleep(0.1)

    def _start_daemons(self) -> None:
        self._spawn([*self._nsenter(), "slurmctld", "-D", "-f", str(self.conf)], "slurmctld")
        time.sleep(0.5)
        self._spawn([*self._nsenter(), "slurmd", "-D", "-f", str(self.conf), "-N", self.node],
                    "slurmd")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for proc, name in zip(self._procs, ("munged", "slurmctld", "slurmd"), strict=False):
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"{name} exited ({proc.returncode}): "
                                             f"{self._tail(name + '.out')}")
            done = self.client("sinfo", "-h", "-N", "-o", "%T", check=False)
            last = (done.stdout + done.stderr).strip()
            if done.returncode == 0 and last.split() and last.split()[0].rstrip("*") in {
                    "idle", "mixed", "allocated"}:
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"the Slurm node did not come up in {timeout_s:.0f} s "
                                 f"(sinfo: {last or 'nothing'})")

    def _tail(self, name: str) -> str:
        path = self.root / "log" / name
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:]) or "(no output)"


if __name__ == "__main__":  # a smoke check: start, a 4-task array, stop
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, SlurmCluster(Path(tmp)) as cluster:
        started = time.monotonic()
        job = cluster.client("sbatch", "--parsable", "--array=0-3", f"--output={tmp}/%A_%a.out",
                             "--wrap", "sleep 1; hostname").stdout.strip()
        while cluster.client("squeue", "-h", "-j", job).stdout.strip():
            time.sleep(0.5)
        print(f"array {job} done in {time.monotonic() - started:.1f} s:",
              sorted(p.read_text().strip() for p in Path(tmp).glob("*.out")))
