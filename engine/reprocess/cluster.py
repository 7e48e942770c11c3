"""The Dask client of a batch: an existing scheduler, a local cluster, or SLURM.

* ``--scheduler tcp://HOST:PORT``: a cluster someone started (``dask scheduler``, ``dask
  worker ADDR --nthreads 1``); its own ``distributed.scheduler.allowed-failures`` applies.
* ``--local-cluster N`` (the default, N = ``engine.workers``): N worker processes on this
  machine, one thread each.
* ``--slurm``: a dask-jobqueue ``SLURMCluster`` from the ``[cluster]`` table of the
  configuration file (queue, account, cores, memory, walltime, jobs, ...): each SLURM job runs
  ``cores`` single-threaded worker processes.

Every worker runs one task at a time with one BLAS/OpenMP thread (the Nanny's
``pre-spawn-environ`` sets ``OMP_NUM_THREADS=1`` and friends; the SLURM job script exports them
too), and :class:`~engine.reprocess.worker.WorkerSetup` loads the engine and the SNID templates
once per worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import ConfigError
from engine.reprocess.worker import WorkerSetup
from engine.threads import SINGLE_THREAD_ENV


@dataclass(frozen=True, kw_only=True)
class SlurmSettings:
    """The ``[cluster]`` table: a SLURM allocation of single-threaded Dask workers."""

    queue: str = ""
    """Partition (``#SBATCH -p``); '' : the site's default."""
    account: str = ""
    """Account charged (``#SBATCH -A``)."""
    cores: int = 8
    """Cores per SLURM job; one single-threaded worker process per core."""
    memory: str = "16GB"
    """Memory per SLURM job (shared by its workers: keep >= 1.5 GB per core)."""
    walltime: str = "04:00:00"
    """Wall-time limit of a job; a pre-empted or expired job's tasks are run again elsewhere."""
    jobs: int = 4
    """SLURM jobs to keep running (workers = jobs x cores)."""
    local_directory: str = ""
    """Workers' scratch directory (node-local disk); '' : Dask's default."""
    log_directory: str = ""
    """Where the jobs' logs go; '' : the current directory."""
    interface: str = ""
    """Network interface of the workers (``ib0``...); '' : Dask's default."""
    python: str = ""
    """Python of the workers (the venv holding sedmtui); '' : this one."""
    job_extra_directives: tuple[str, ...] = ()
    """Extra ``#SBATCH`` lines (``--constraint=...``, ``--qos=...``)."""
    prologue: tuple[str, ...] = ()
    """Shell lines run before the worker starts (``module load ...``, ``source venv/bin/activate``)."""
    allowed_failures: int = 3
    """Worker deaths a task may cause before it is reported failed (``KilledWorker``)."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> SlurmSettings:
        """From the ``[cluster]`` table of a configuration file.

        Raises
        ------
        ConfigError
            An unknown key or a value of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        bad = set(table) - set(known)
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)} in [cluster]; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in table.items():
            default = known[name].default
            try:
                if isinstance(default, tuple):
                    values[name] = tuple(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
                elif isinstance(default, int):
                    values[name] = int(value)
                else:
                    values[name] = str(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[cluster] {name} = {value!r} is not a valid {type(default).__name__}") from exc
        return cls(**values)

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``dask_jobqueue.SLURMCluster``."""
        kw: dict[str, Any] = {
            "cores": self.cores, "processes": self.cores, "memory": self.memory, "walltime": self.walltime,
            "job_script_prologue": [*(f"export {v}=1" for v in SINGLE_THREAD_ENV), *self.prologue],
            "job_extra_directives": list(self.job_extra_directives),
        }
        for name in ("queue", "account", "local_directory", "log_directory", "interface", "python"):
            if getattr(self, name):
                kw[name] = getattr(self, name)
        return kw


def slurm_cluster(settings: SlurmSettings):
    """A ``SLURMCluster`` scaled to ``settings.jobs`` jobs (submits them with ``sbatch``)."""
    import dask
    from dask_jobqueue import SLURMCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": settings.allowed_failures}):
        cluster = SLURMCluster(**settings.cluster_kwargs())
    cluster.scale(jobs=settings.jobs)
    return cluster


@dataclass
class Connection:
    """A connected client and how to let it go.

    Attributes
    ----------
    client : distributed.Client
        The client.
    description : str
        What it is connected to (for the terminal).
    dashboard : str
        The dashboard's address ('' : none; the dashboard needs ``bokeh``).
    closers : list of callable
        Called by :meth:`close`, in order.
    """

    client: Any
    description: str
    dashboard: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close the client, then the cluster it started (if any)."""
        for close in self.closers:
            try:
                close()
            except Exception:  # noqa: BLE001,S110 - best effort at exit
                pass


def dashboard_of(client) -> str:
    """The scheduler's dashboard address, or '' when it serves none."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001
        return ""
    return client.dashboard_link if "dashboard" in services else ""


def connect(*, scheduler: str | None = None, local_workers: int | None = None, slurm: SlurmSettings | None = None,
            processes: bool = True, allowed_failures: int = 3, templates_dir: str = "") -> Connection:
    """Connect a client to the chosen cluster and set its workers up.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler.
    local_workers : int, optional
        Workers of a local cluster.
    slurm : SlurmSettings, optional
        A SLURM cluster.
    processes : bool
        Local cluster: worker processes (False: threads of this process, for tests).
    allowed_failures : int
        Local cluster: worker deaths a task may cause before ``KilledWorker``.
    templates_dir : str
        SNID templates each worker loads once.
    """
    import dask
    from distributed import Client, LocalCluster

    conn: Connection
    if scheduler:
        client = Client(scheduler, timeout="30s")
        conn = Connection(client, f"scheduler {scheduler}", closers=[client.close])
    elif slurm is not None:
        cluster = slurm_cluster(slurm)
        client = Client(cluster)
        conn = Connection(client, f"SLURM: {slurm.jobs} job(s) x {slurm.cores} worker(s)",
                          closers=[client.close, cluster.close])
    else:
        n = max(1, int(local_workers or 1))
        with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                   dashboard_address=":0" if _has_bokeh() else None)
        client = Client(cluster)
        conn = Connection(client, f"local cluster: {n} worker {'process' if processes else 'thread'}"
                          f"{'es' if processes and n > 1 else 's' if n > 1 else ''}", closers=[client.close, cluster.close])
    client.register_plugin(WorkerSetup(templates_dir))
    conn.dashboard = dashboard_of(client)
    return conn


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["Connection", "SlurmSettings", "connect", "dashboard_of", "slurm_cluster"]
