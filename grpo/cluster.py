"""Starting or joining the Ray cluster (Ray stays at the edges: only drivers call this)."""

from __future__ import annotations

from grpo.config import ClusterConfig


def ensure_ray(cluster: ClusterConfig) -> None:
    """Join `cluster.address` if given, else start a local cluster; no-op if Ray is already up.

    Actors import the toolkit from the same environment as the driver (an installed or editable package),
    so no runtime_env is shipped.
    """
    import ray

    if ray.is_initialized():
        return
    if cluster.address:
        ray.init(address=cluster.address, log_to_driver=True)
    else:
        # address="local": always a new cluster of this process. Without it Ray joins any cluster already
        # running on the machine (ray start), and then refuses num_cpus/num_gpus.
        ray.init(address="local", num_cpus=cluster.num_cpus, num_gpus=cluster.num_gpus, include_dashboard=False,
                 log_to_driver=True)
