"""Jobs on a Ray cluster of three one-CPU nodes started on this machine (``ray.cluster_utils``): the hosts of a
job placed on different nodes, a node lost mid-job and the job resumed from its checkpoint on the others."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from botocore.exceptions import WaiterError

from helpers import FAST, Server, training_request, wait_until_ended
from roost.storage.database import open_database
from roost.training.ray_cluster import ClusterError, RayLauncher, parse_resources
from roost.training.runner import JobRunner
from roost.training.service import TrainingJobService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="the Ray backend's tests need Ray: pip install 'roost[ray]'")
    from ray.cluster_utils import Cluster

    # hosts go to the worker nodes only; a lost node is noticed within about a second, not Ray's default 15 s
    fast_health_checks = {"health_check_period_ms": 300, "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": fast_health_checks})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


@pytest.fixture()
def env(cluster, tmp_path):
    c, nodes = cluster
    sessions = open_database(f"sqlite:///{tmp_path / 'roost.db'}")
    launcher = RayLauncher(c.address, {"ml.m5.large": (1, 0)}, placement_timeout=60)
    runner = JobRunner(sessions, tmp_path / "data", poll=0.1, stop_grace=5, launcher=launcher)
    runner.start()
    yield runner, TrainingJobService(sessions), c, nodes
    runner.shutdown()


def _request(recs, tmp_path, name, epochs, **extra):
    resources = {"InstanceCount": 2, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
    return training_request(recs, tmp_path, name=name, epochs=epochs, ResourceConfig=resources, **extra)


def _wait(service, name, timeout=240):
    return wait_until_ended(service, name, timeout, every=0.2)


def _hosts(runner, name, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        group = runner.processes.get(name)
        if group and all(h.proc is not None for h in group.hosts):
            return group.hosts
        time.sleep(0.1)
    raise AssertionError(f"{name} never had all its hosts placed")


def test_a_two_host_job_runs_on_two_nodes(env, recs, tmp_path):
    runner, service, _, _ = env
    service.create_training_job(_request(recs, tmp_path, "on-ray", epochs=2))
    hosts = _hosts(runner, "on-ray")
    assert hosts[0].proc.node_id != hosts[1].proc.node_id  # one CPU per node: one host each
    d = _wait(service, "on-ray")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert "Epoch[1] Validation-accuracy" in (hosts[0].folder / "training.log").read_text()
    assert "algo-2 (rank 1) finished its share" in (hosts[1].folder / "training.log").read_text()


def _lose_the_node_of(cluster, nodes, host) -> None:
    node = next(n for n in nodes if n.node_id == host.proc.node_id)
    cluster.remove_node(node, allow_graceful=False)
    nodes.remove(node)


def test_a_lost_node_restarts_the_job_from_its_checkpoint_on_the_nodes_left(env, recs, tmp_path):
    runner, service, cluster, nodes = env
    checkpoints = {"CheckpointConfig": {"S3Uri": (tmp_path / "checkpoints").as_uri()}}
    service.create_training_job(_request(recs, tmp_path, "resilient", epochs=30, **checkpoints))
    hosts = _hosts(runner, "resilient")
    deadline = time.time() + 120
    while not any(hosts[0].layout.checkpoints.glob("*.pt")) and time.time() < deadline:
        time.sleep(0.2)
    assert any(hosts[0].layout.checkpoints.glob("*.pt")), "no checkpoint was saved"
    _lose_the_node_of(cluster, nodes, hosts[1])
    d = _wait(service, "resilient")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    messages = [t.get("StatusMessage", "") for t in d["SecondaryStatusTransitions"]]
    assert any(m.startswith("The node of algo-2 was lost; restarting from the last checkpoint") for m in messages)
    assert "Resuming from" in (hosts[0].folder / "training.log").read_text()


def test_without_a_checkpoint_a_lost_node_fails_the_job_saying_so(env, recs, tmp_path):
    runner, service, cluster, nodes = env
    while len(nodes) < 2:
        nodes.append(cluster.add_node(num_cpus=1))
    cluster.wait_for_nodes()
    service.create_training_job(_request(recs, tmp_path, "fragile", epochs=500))
    hosts = _hosts(runner, "fragile")
    time.sleep(3)
    _lose_the_node_of(cluster, nodes, hosts[1])
    d = _wait(service, "fragile")
    assert d["TrainingJobStatus"] == "Failed"
    assert re.search(
        r"the cluster node running algo-2 was lost \(node [0-9a-f]+\); the job has no CheckpointConfig",
        d["FailureReason"],
    ), d["FailureReason"]


def test_hosts_on_nodes_without_the_data_folder_read_the_store_through_the_server_url(cluster, recs, tmp_path):
    """``--cluster-server-url``: each host makes its /opt/ml folder on its node, downloads its s3:// channels from
    the embedded store through the server's URL and sends its model and checkpoints back; nothing of the data
    is put in the server's own job folders."""
    c, nodes = cluster
    while len(nodes) < 2:
        nodes.append(c.add_node(num_cpus=1))
    c.wait_for_nodes()
    server = Server(tmp_path / "data", cluster=c.address, cluster_resources="ml.m5.large=1:0")
    server.flags["cluster_server_url"] = server.url
    server.start()
    try:
        s3, sm = server.client("s3"), server.client()
        s3.create_bucket(Bucket="lab")
        train, val, _ = recs
        s3.upload_file(str(train), "lab", "train/train.rec")
        s3.upload_file(str(val), "lab", "validation/val.rec")
        request = _request(recs, tmp_path, "staged", epochs=2, CheckpointConfig={"S3Uri": "s3://lab/checkpoints"})
        request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://lab/train/"
        request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://lab/validation/"
        request["OutputDataConfig"]["S3OutputPath"] = "s3://lab/output"
        sm.create_training_job(**request)
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="staged", WaiterConfig=FAST)
        d = sm.describe_training_job(TrainingJobName="staged")
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        s3.head_object(Bucket="lab", Key="output/staged/output/model.tar.gz")
        assert s3.list_objects_v2(Bucket="lab", Prefix="checkpoints/")["KeyCount"] > 0  # came back, went on to S3
        job = server.data_dir / "jobs" / "staged"
        for folder in (job, job / "algo-2"):
            log = (folder / "training.log").read_text()
            assert f"[roost] downloading s3://lab/train/ into channel train from the server at {server.url}" in log
            assert not (folder / "opt_ml" / "input" / "data").exists()  # the server copied nothing
        log = (job / "training.log").read_text()  # the first host trained in a folder of its node's own
        assert re.search(r"provided configuration from \S*/roost-host-[^/]+/opt_ml/input/config/", log)
        assert any((job / "opt_ml" / "model").iterdir())  # the first host's model came back
        # a path only the server sees cannot reach the nodes: the job fails saying what to do instead
        local = _request(recs, tmp_path, "staged-local", epochs=1)
        sm.create_training_job(**local)
        with pytest.raises(WaiterError, match="Failed"):
            sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="staged-local", WaiterConfig=FAST)
        d = sm.describe_training_job(TrainingJobName="staged-local")
        assert d["TrainingJobStatus"] == "Failed"
        assert "is a path on the server, which the cluster's nodes do not see" in d["FailureReason"]
        assert "aws s3 cp --recursive" in d["FailureReason"]
    finally:
        server.stop()


def test_resource_specs_and_an_unreachable_cluster_are_explained():
    assert parse_resources("ml.p3.2xlarge=8:1, ml.m5.large=2") == {"ml.p3.2xlarge": (8, 1), "ml.m5.large": (2, 0)}
    with pytest.raises(ClusterError, match="INSTANCE_TYPE=CPUS:GPUS"):
        parse_resources("ml.p3.2xlarge")


def test_a_cluster_server_url_that_nodes_could_not_use_is_refused_at_start():
    from roost.errors import UserError
    from roost.server import Settings, _launcher

    keys = {"AKID": "secret"}
    for url in ("10.0.0.5:8080", "ftp://10.0.0.5", "http://", "http://10.0.0.5:8080/console"):
        with pytest.raises(UserError, match="give this server's address as the nodes reach it"):
            _launcher(Settings(data_dir=Path("."), cluster="auto", cluster_server_url=url), keys)
    with pytest.raises(UserError, match="give --cluster ADDRESS too"):
        _launcher(Settings(data_dir=Path("."), cluster_server_url="http://10.0.0.5:8080"), keys)
