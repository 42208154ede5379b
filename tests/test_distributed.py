"""Beyond one machine, by simulation: two "machines" on localhost (two `accelerate launch`, gloo), the topology as
params, the generated cluster recipes, failures that stop within their timeout and leave no process, and the
fine-tuned adapters as DVC artifacts."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from repo_helpers import env as repo_env
from repo_helpers import free_port, run, sst2_like_rows
from safetensors.torch import load_file

from tuneval.config import TinyModelConfig, load_params
from tuneval.errors import ConfigError, LaunchError
from tuneval.io import write_jsonl
from tuneval.models.tiny import build_tiny_model
from tuneval.tasks import demonstration, get_task
from tuneval.train.cluster import node_commands, recipes
from tuneval.train.launch import Node, Topology, launch_command, node_from_env

REPO = Path(__file__).resolve().parents[1]
SHAPE = TinyModelConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=64, max_position_embeddings=512)
STEPS = 8  # 32 examples x 2 epochs / batch 8

# One "machine" = one directory with the same inputs at the same relative paths, as two hosts would have them.
DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tuneval.config import load_params
    from tuneval.errors import report_error
    from tuneval.train.job import TrainJob
    from tuneval.train.run import run_training

    job = TrainJob(task="sst2", base_model=Path("models/base"), train_file=Path("data/train.jsonl"),
                   out_dir=Path("models/sst2"), live_dir=Path("dvclive/sst2"),
                   checkpoint_dir=Path("checkpoints/sst2"), eval_file=Path("data/eval.jsonl"))
    try:
        run_training(job, load_params("params.yaml"))
    except Exception as err:
        report_error(err)
        sys.exit(1)
""")


def small_params(**train):
    params = load_params(REPO / "params.yaml")
    return dataclasses.replace(
        params, epochs=2, batch_size=8, lr=2e-5, model=dataclasses.replace(params.model, dtype="float32"),
        eval=dataclasses.replace(params.eval, max_prompt_tokens=96),
        train=dataclasses.replace(params.train, **{
            "method": "full", "per_device_batch_size": 4, "save_steps": 2, "log_points": 5, "max_length": 128,
            "eval_examples": 8, "num_processes": 2, "num_machines": 1, **train}),
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The tiny model and 32 SST-2-like rows, built once; plus the training driver."""
    root = tmp_path_factory.mktemp("inputs")
    rows = sst2_like_rows(32)
    write_jsonl(root / "data" / "train.jsonl", rows)
    write_jsonl(root / "data" / "eval.jsonl", rows[::-1])
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name="tiny-llama", tiny=SHAPE)
    build_tiny_model(model_cfg, [demonstration(get_task("sst2"), r) for r in rows], seed=1,
                     out_dir=root / "models" / "base")
    (root.parent / "driver.py").write_text(DRIVER)
    return root


def machine(inputs: Path, dest: Path, params) -> Path:
    """A workspace: the inputs and a params.yaml (what a clone + `dvc pull` gives each host)."""
    shutil.copytree(inputs, dest)
    (dest / "params.yaml").write_text(yaml.safe_dump(dataclasses.asdict(params), sort_keys=False))
    return dest


def listing(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def sim_env(port: int, **extra: str) -> dict[str, str]:
    # OMP_NUM_THREADS=1 on both sides: torchrun sets it for 2 local processes, not for 1 per machine, and a
    # different thread count may change float sums. The rest is the node-local environment of examples/cluster.
    return repo_env(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", TUNEVAL_RENDEZVOUS_TIMEOUT="120",
                    TUNEVAL_WORKER_WAIT="180", **extra)


def run_two_machines(m0: Path, m1: Path, driver: str, timeout: float
                     ) -> tuple[subprocess.CompletedProcess, int | None, str]:
    """Machine 1 waits as a worker while machine 0 runs `driver` (the pipeline) then releases it: machine 0's
    completed process, machine 1's exit status and output. Nothing is left running."""
    port = free_port()
    worker = subprocess.Popen(node(1, port, "false"), cwd=m1, env=sim_env(port), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        head = subprocess.run(node(0, port, driver), cwd=m0, env=sim_env(port), capture_output=True, text=True,
                              timeout=timeout)
        worker_out, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    return head, worker.returncode, worker_out


def node(rank: int, port: int, pipeline: str) -> list[str]:
    """What each simulated machine runs: the recipes' own per-node commands (tuneval.train.cluster.node_commands)."""
    return ["bash", "-c", node_commands(machine_rank=str(rank), main_ip="127.0.0.1", main_port=str(port),
                                        num_processes="2", num_machines="2", pipeline=pipeline)]


def stray_processes(root: Path) -> list[str]:
    """Processes still alive that this test started: children of this process, or anything working in `root`."""
    import psutil

    mine = set(psutil.Process().children(recursive=True))
    mine |= {proc for proc in psutil.process_iter(["cwd"]) if (proc.info.get("cwd") or "").startswith(str(root))}
    alive = []
    for proc in mine:
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(proc.cmdline()))
    return alive


# ------------------------------------------------------------------------------ two machines on localhost
@pytest.mark.slow  # 70-80 s on 2 CPU cores: a dozen Python processes start torch (training itself: seconds)
def test_two_machines_on_localhost_train_the_weights_of_two_processes_on_one(inputs, tmp_path):
    """Machine 0 and machine 1 (one gloo process each, rendezvous at 127.0.0.1:<free port>) end at exactly the
    weights (torch.equal, no tolerance) of the 2-process single-machine run with the same effective batch; machine 0
    alone writes outputs, dvclive and checkpoint metadata, machine 1's workspace is left as it was."""
    driver = f"{sys.executable} {tmp_path.parent / 'driver.py'}"
    single = machine(inputs, tmp_path / "single", small_params())
    run(["bash", "-c", driver], single, timeout=300, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
        TUNEVAL_MAIN_PROCESS_PORT=str(free_port()))  # not accelerate's 29500: other runs may hold it

    two = small_params(num_machines=2)
    m0, m1 = machine(inputs, tmp_path / "m0", two), machine(inputs, tmp_path / "m1", two)
    before = listing(m1)
    start = time.monotonic()
    head, worker_status, worker_out = run_two_machines(m0, m1, driver, timeout=400)
    elapsed = time.monotonic() - start
    assert head.returncode == 0, (head.stdout + head.stderr)[-4000:]
    assert worker_status == 0, worker_out[-4000:]
    assert "released by machine 0 (0 failed run(s))" in worker_out and "trained sst2" in worker_out
    assert "launching 2 training processes on 2 machine(s)" in head.stdout
    print(f"two-machine run incl. release: {elapsed:.1f} s")

    ours, theirs = load_file(m0 / "models/sst2/model.safetensors"), load_file(single / "models/sst2/model.safetensors")
    base = load_file(inputs / "models/base/model.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), f"{key}: two machines differ from two local processes"
    assert any(not torch.equal(ours[k], base[k]) for k in ours), "nothing trained"
    info = (m0 / "models/sst2/tuneval_training.json").read_text()
    assert info == (single / "models/sst2/tuneval_training.json").read_text() and f'"optimizer_steps": {STEPS}' in info
    for curve in sorted((single / "dvclive/sst2/plots").rglob("*.tsv")):  # same losses, step by step
        assert (m0 / curve.relative_to(single)).read_text() == curve.read_text(), curve.name
    assert not list((m0 / "checkpoints/sst2").glob("checkpoint-*")), "machine 0 pruned the checkpoints"

    assert listing(m1) == before, "machine 1 wrote into its workspace"
    assert not stray_processes(tmp_path)


# ------------------------------------------------------------------------------------- failures, bounded
def test_a_machine_that_never_joins_stops_the_run_within_the_timeout_and_leaves_no_process(inputs, tmp_path):
    m0 = machine(inputs, tmp_path / "m0", small_params(num_machines=2))
    port, timeout = free_port(), 10
    env = {**sim_env(port), "TUNEVAL_RENDEZVOUS_TIMEOUT": str(timeout), "TUNEVAL_MACHINE_RANK": "0",
           "TUNEVAL_MAIN_PROCESS_IP": "127.0.0.1", "TUNEVAL_MAIN_PROCESS_PORT": str(port)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(tmp_path.parent / "driver.py")], cwd=m0, env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: training sst2: not all 2 training processes on 2 machine(s) joined at "
                            f"127.0.0.1:{port} within {timeout} s (TUNEVAL_RENDEZVOUS_TIMEOUT)"), proc.stderr[-3000:]
    assert "python -m tuneval.train.launch worker" in error
    # start-up (python, torch) + the timeout + stopping: the wait itself is bounded by the timeout
    assert elapsed < timeout + 30, elapsed
    assert not stray_processes(tmp_path)
    assert not (m0 / "models/sst2").exists() and not (m0 / "checkpoints/sst2/launch.json").exists()


def test_a_machine_missing_an_input_file_stops_both_with_one_paragraph_naming_it(inputs, tmp_path):
    """Machine 1's clone lacks the train file: before any step, both machines stop, machine 0 with a LaunchError
    naming the machine and the file; machine 1 reports the failed run and exits non-zero once released."""
    driver = f"{sys.executable} {tmp_path.parent / 'driver.py'}"
    two = small_params(num_machines=2)
    m0, m1 = machine(inputs, tmp_path / "m0", two), machine(inputs, tmp_path / "m1", two)
    (m1 / "data/train.jsonl").unlink()
    head, worker_status, worker_out = run_two_machines(m0, m1, driver, timeout=300)
    assert head.returncode == 1, (head.stdout + head.stderr)[-4000:]
    errors = [line for line in head.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: machine(s) 1 do not have machine 0's train inputs (base model, train and eval files) "
                      "or params: every machine needs the same commit and `dvc pull` (or a shared filesystem) "
                      "before it trains; machine 1: missing data/train.jsonl"], head.stderr[-4000:]
    assert worker_status == 1 and "released by machine 0 (1 failed run(s))" in worker_out, worker_out[-4000:]
    assert not (m0 / "models/sst2").exists()
    assert not stray_processes(tmp_path)


def test_a_worker_whose_machine_0_never_comes_stops_within_its_wait(tmp_path):
    port = free_port()
    env = {**sim_env(port), "TUNEVAL_WORKER_WAIT": "5", "TUNEVAL_MACHINE_RANK": "1",
           "TUNEVAL_MAIN_PROCESS_IP": "127.0.0.1", "TUNEVAL_MAIN_PROCESS_PORT": str(port)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tuneval.train.launch", "worker", "--num-processes", "2",
                           "--num-machines", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: machine 1: machine 0 started no training run at 127.0.0.1:{port} within 5 s "
                            "(TUNEVAL_WORKER_WAIT)"), proc.stderr[-3000:]
    assert elapsed < 5 + 40, elapsed  # torch's client retries once more after the wait, then start-up and stop
    assert not stray_processes(tmp_path)


def test_a_config_naming_a_missing_file_fails_at_once_with_one_paragraph(tmp_path, write_params):
    """Machine 0 (params.yaml) and a worker (its flag) both name the missing accelerate config; nothing starts."""
    path = write_params(train={"num_processes": 2, "num_machines": 2, "per_device_batch_size": 4,
                               "accelerate_config": "configs/accelerate/missing.yaml"})
    with pytest.raises(ConfigError, match=r"train\.accelerate_config = 'configs/accelerate/missing\.yaml'"):
        load_params(path)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tuneval.train.launch", "worker", "--num-processes", "2",
                           "--num-machines", "2", "--accelerate-config", "configs/accelerate/missing.yaml"],
                          cwd=tmp_path, env=sim_env(0, TUNEVAL_MACHINE_RANK="1"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and time.monotonic() - start < 30
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: train.accelerate_config = 'configs/accelerate/missing.yaml': no such file")
    assert not stray_processes(tmp_path)


# ------------------------------------------------------------------------------- topology: params, not env
def test_node_settings_come_from_the_environment_or_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shape = Topology(num_processes=16, num_machines=2)
    env = {"TUNEVAL_MACHINE_RANK": "1", "TUNEVAL_MAIN_PROCESS_IP": "10.0.0.1", "TUNEVAL_MAIN_PROCESS_PORT": "29400"}
    assert node_from_env(shape, env) == Node(1, "10.0.0.1", 29400)
    command = launch_command(shape, "x.json", Node(1, "10.0.0.1", 29400), rendezvous_timeout=30)
    flags = {flag: command[command.index(flag) + 1] for flag in command if flag.startswith("--")}
    assert flags["--num_processes"] == "16" and flags["--num_machines"] == "2" and flags["--machine_rank"] == "1"
    assert flags["--main_process_ip"] == "10.0.0.1" and flags["--main_process_port"] == "29400"
    assert "timeout=30" in command and command[-3:] == ["-m", "tuneval.train.rank", "x.json"]
    with pytest.raises(LaunchError, match="TUNEVAL_MAIN_PROCESS_IP"):
        node_from_env(shape, {})
    with pytest.raises(LaunchError, match=r"machine rank 2 .* outside 0\.\.1"):
        node_from_env(shape, {**env, "TUNEVAL_MACHINE_RANK": "2"})

    config = Path("configs/accelerate/multi.yaml")
    config.parent.mkdir(parents=True)
    config.write_text("machine_rank: 1\nmain_process_ip: 10.0.0.9\nmain_process_port: 29401\nnum_machines: 2\n")
    from_file = dataclasses.replace(shape, accelerate_config=str(config))
    assert node_from_env(from_file, {}) == Node(1, "10.0.0.9", 29401)
    assert node_from_env(from_file, {"TUNEVAL_MACHINE_RANK": "0"}).machine_rank == 0  # the environment wins
    config.write_text("num_machines: 4\n")  # contradicts params.yaml's train.num_machines
    with pytest.raises(ConfigError, match=r"sets num_machines: 4 but train\.num_machines is 2"):
        node_from_env(from_file, env)


def test_topology_is_params_checked_recorded_and_a_dep_of_train(write_params, tmp_path):
    from tuneval.train.checkpoints import fingerprint
    from tuneval.train.job import TrainJob

    with pytest.raises(ConfigError, match=r"train\.num_machines = 3 .*divides train\.num_processes=4"):
        load_params(write_params(batch_size=8, train={"num_processes": 4, "per_device_batch_size": 2,
                                                      "num_machines": 3}))
    outside = tmp_path / "accelerate.yaml"
    outside.write_text("distributed_type: MULTI_GPU\n")
    with pytest.raises(ConfigError, match=r"train\.accelerate_config = .* a file under configs/accelerate/"):
        load_params(write_params(train={"accelerate_config": str(outside)}))
    assert load_params(REPO / "params.yaml").train.num_machines == 1

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]
    assert "train" in stage["params"]  # train.num_processes, num_machines, accelerate_config: dvc.lock, exp show
    assert "configs/accelerate" in [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    assert (REPO / "configs/accelerate").is_dir()
    (tmp_path / "f").write_text("x")
    job = TrainJob("sst2", tmp_path, tmp_path / "f", tmp_path, tmp_path, tmp_path)
    one, two = small_params(), small_params(num_machines=2)
    assert fingerprint(one, job) != fingerprint(two, job), "a checkpoint of one topology is not resumed on another"


def test_dvc_records_the_topology_and_reruns_train_when_it_or_the_accelerate_config_changes(tmp_path):
    """A stage with the train stage's params and configs/accelerate dep, in a throwaway DVC repo: dvc.lock records
    train.num_processes / num_machines / accelerate_config, and changing one, or a config file, marks it changed."""
    import json

    from dvc.utils.hydra import apply_overrides

    real = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "configs/accelerate", repo / "configs/accelerate")
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    stage = {"cmd": "echo trained > out.txt", "deps": ["configs/accelerate"], "params": real["params"],
             "outs": ["out.txt"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "repro", "-q"], repo)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["params"]["params.yaml"]
    assert {"num_processes", "num_machines", "accelerate_config"} <= set(lock["train"])

    def changed() -> list:
        return json.loads(run(["dvc", "status", "--json"], repo)).get("train", [])

    assert changed() == []
    apply_overrides(str(repo / "params.yaml"), ["train.num_machines=2"])
    assert changed() == [{"changed deps": {"params.yaml": {"train": "modified"}}}]  # DVC names the group
    apply_overrides(str(repo / "params.yaml"), ["train.num_machines=1"])
    (repo / "configs/accelerate/fsdp.yaml").write_text("distributed_type: FSDP\n")
    assert changed() == [{"changed deps": {"configs/accelerate": "modified"}}]


def test_dvc_set_of_the_topology_changes_one_line_of_params_yaml(tmp_path):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` (and so the recipes) call

    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    before = path.read_text().splitlines()
    apply_overrides(str(path), ["train.num_machines=4", "train.num_processes=32", "batch_size=256"])
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == ["batch_size: 256", "num_processes: 32", "num_machines: 4"]
    assert load_params(path).train.num_machines == 4  # batch_size: a multiple of each task's micro-batch x 32


def test_machines_with_other_inputs_or_checkpoints_are_named():
    from tuneval.train.rank import _inputs_message

    spec = {"fingerprint": "abc"}
    assert _inputs_message(spec, [(0, None, None), (1, "abc", None)]) is None
    message = _inputs_message(spec, [(0, None, None), (1, "abd", None), (2, "missing data/train.jsonl", None)])
    assert message.startswith("machine(s) 1, 2 do not have machine 0's train inputs")
    assert "machine 2: missing data/train.jsonl" in message and "dvc pull" in message
    message = _inputs_message(spec, [(0, None, "checkpoint-4"), (1, "abc", None)])
    assert "different checkpoints" in message and "filesystem all machines share" in message


# ---------------------------------------------------------------------------------------- cluster recipes
def test_committed_recipes_are_what_the_generator_writes_and_parse(tmp_path):
    generated = recipes()
    assert sorted(p.name for p in (REPO / "examples/cluster").iterdir()) == sorted(generated)
    for name, text in generated.items():
        assert (REPO / "examples/cluster" / name).read_text() == text, (
            f"examples/cluster/{name} is stale: run `python -m tuneval.train.cluster write`")
    for name in ("slurm.sbatch", "queue_gpus.sh"):
        subprocess.run(["bash", "-n", str(REPO / "examples/cluster" / name)], check=True)
        assert os.access(REPO / "examples/cluster" / name, os.X_OK)
    task = yaml.safe_load(generated["skypilot.yaml"])
    assert task["num_nodes"] >= 2 and "accelerators" in task["resources"]
    for block in ("setup", "run"):
        (tmp_path / block).write_text(task[block])
        subprocess.run(["bash", "-n", str(tmp_path / block)], check=True)
    assert "SKYPILOT_NODE_RANK" in task["run"] and "SKYPILOT_NODE_IPS" in task["run"]
    slurm = generated["slurm.sbatch"]
    assert "srun" in slurm and "SLURM_NODEID" in slurm
    commands = "\n".join(line for line in slurm.splitlines() if not line.lstrip().startswith("#"))
    order = [commands.index(step) for step in ("git clone", "dvc pull", "dvc exp run", "dvc exp push")]
    assert order == sorted(order), "clone -> dvc pull -> dvc exp run -> dvc exp push"
    assert "CUDA_VISIBLE_DEVICES=$gpu" in generated["queue_gpus.sh"]
    # the per-node lines in both recipes are node_commands' output, the function the localhost test runs
    assert node_commands(machine_rank="$SLURM_NODEID", main_ip="$MAIN_IP", main_port="$MAIN_PORT",
                         num_processes="$((SLURM_NNODES * GPUS_PER_NODE))", num_machines="$SLURM_NNODES",
                         pipeline="dvc exp run -S train.num_processes=$((SLURM_NNODES * GPUS_PER_NODE)) "
                                  "-S train.num_machines=$SLURM_NNODES -S train.attn_implementation=sdpa "
                                  "-S eval.num_processes=$GPUS_PER_NODE "
                                  '"$@"') in slurm  # evaluation: data-parallel over node 0's GPUs


# -------------------------------------------------------------------------------------------- artifacts
def test_adapters_and_base_model_are_declared_as_model_artifacts():
    from dvc.repo import Repo

    with Repo(str(REPO)) as dvc:
        artifacts = dvc.artifacts.read()["dvc.yaml"]
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outputs = {"models/base", *(stages["train"]["do"]["outs"][0].replace("${item}", t) for t in ("sst2", "squad_v2"))}
    assert {a.path for a in artifacts.values()} == outputs == {"models/base", "models/sst2", "models/squad_v2"}
    for name, artifact in artifacts.items():
        assert artifact.type == "model" and artifact.desc and artifact.labels, name


def test_dvc_artifacts_get_fetches_the_adapter_from_a_local_repo(tmp_path):
    """A minimal DVC repo with this project's `artifacts:` block and a fake models/sst2 output, pushed to a local
    directory remote and its cache emptied: `dvc artifacts get <repo path> sst2-adapter` fetches the same bytes."""
    repo = tmp_path / "repo"
    (repo / "fake").mkdir(parents=True)
    files = {"adapter_model.safetensors": os.urandom(4096), "adapter_config.json": b'{"r": 8}\n'}
    for name, data in files.items():
        (repo / "fake" / name).write_bytes(data)
    artifacts = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"train": {"cmd": "mkdir -p models && cp -r fake models/sst2", "deps": ["fake"],
                             "outs": ["models/sst2"]}},
        "artifacts": artifacts,
    }, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    run(["dvc", "repro", "-q"], repo)
    run(["dvc", "push", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "adapter"], repo)
    run(["git", "tag", "-a", "sst2-adapter@v1.0.0", "-m", "Registering artifact sst2-adapter version 1.0.0"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")  # only the remote has the files now

    out = tmp_path / "fetched"
    out.mkdir()
    run(["dvc", "artifacts", "get", str(repo), "sst2-adapter"], out, timeout=300)
    fetched = out / "sst2"
    assert sorted(p.name for p in fetched.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (fetched / name).read_bytes() == data
