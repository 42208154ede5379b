"""`dvc push` / `dvc pull` round trips: the repo's default local-directory remote and an S3 endpoint (moto).

The small pipeline runs once per test session (repo_helpers.built_small_repo); each test pushes its own copy, pulls
into a fresh `git clone`, and checks that every DVC-cached file comes back bit-identical and nothing recomputes.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from repo_helpers import REPO, VENV_BIN, cached_outputs, copy_built, env, free_port, git_commit, run, sha256_files

BUCKET = "tuneval-test"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port with one empty bucket; stopped on teardown."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              env=env(**AWS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "moto_server exited at start"
                assert time.monotonic() < deadline, "moto_server did not answer within 30 s"
                time.sleep(0.2)
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield url, client
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _assert_restored_and_up_to_date(original: Path, clone: Path, outputs: list[str], **aws: str) -> None:
    """In a fresh clone: nothing there before `dvc pull`, everything bit-identical after, nothing to rerun."""
    assert not any((clone / out).exists() for out in outputs), "a fresh clone must not have DVC outputs yet"
    run(["dvc", "pull"], clone, **aws)
    expected = sha256_files(original, outputs)
    assert len(expected) >= 20
    assert sha256_files(clone, outputs) == expected
    status = run(["dvc", "status"], clone, **aws)
    assert "Data and pipelines are up to date" in status, status
    repro = run(["dvc", "repro"], clone, **aws)
    assert "Data and pipelines are up to date" in repro, repro
    assert "Running stage" not in repro, repro
    assert sha256_files(clone, outputs) == expected
    assert run(["git", "status", "--porcelain"], clone) == "", "pull + repro must leave git clean"


def test_default_remote_url_is_absolute_or_home_relative():
    """DVC resolves a relative url against the git tree root ('/') when it reads .dvc/config from a commit
    (dvc exp push / exp pull / push -a), so such a default would silently push experiments to '/<url>'."""
    from configobj import ConfigObj

    conf = ConfigObj(str(REPO / ".dvc" / "config"))
    url = conf[f'remote "{conf["core"]["remote"]}"']["url"]
    assert url.startswith(("~", "/")) or "://" in url, url


def test_default_remote_push_and_pull_in_a_fresh_clone(tmp_path_factory, tmp_path):
    home = {"HOME": str(tmp_path / "home")}  # the default remote is ~/.cache/tuneval/dvc-store
    store = tmp_path / "home" / ".cache" / "tuneval" / "dvc-store"
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    assert run(["dvc", "remote", "default"], repo).strip() == "home"
    listed = " ".join(run(["dvc", "remote", "list"], repo, COLUMNS="1000", **home).split())
    assert f"home {store} (default)" in listed

    outputs = cached_outputs(repo)
    assert {"models/base", "models/sst2", "data/split/sst2", "data/prepared/squad_v2", "publish/sst2"} <= set(outputs)
    assert not any(out.startswith("predictions/") for out in outputs), "predictions are in git, not the cache"
    assert "files pushed" in run(["dvc", "push"], repo, **home)
    assert any(p.is_file() for p in (store / "files" / "md5").rglob("*")), "nothing landed in the store"
    assert "Everything is up to date" in run(["dvc", "push"], repo, **home)

    clone = tmp_path / "elsewhere" / "clone"  # any directory on the same machine
    clone.parent.mkdir()
    run(["git", "clone", "-q", repo, clone], tmp_path)
    _assert_restored_and_up_to_date(repo, clone, outputs, **home)


def test_s3_remote_push_pull_round_trip(tmp_path_factory, tmp_path, s3_endpoint):
    url, client = s3_endpoint
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    run(["dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/tuneval"], repo)
    run(["dvc", "remote", "modify", "s3", "endpointurl", url], repo)
    git_commit(repo, "S3 remote")
    outputs = cached_outputs(repo)
    aws = {**AWS, "HOME": str(tmp_path / "home")}
    assert "files pushed" in run(["dvc", "push"], repo, **aws)
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=BUCKET, Prefix="tuneval/").get("Contents", [])]
    assert keys and all(key.startswith("tuneval/files/md5/") for key in keys)
    assert not (tmp_path / "home").exists(), "pushed to the default remote instead of S3"

    clone = tmp_path / "elsewhere" / "clone"
    clone.parent.mkdir()
    run(["git", "clone", "-q", repo, clone], tmp_path)
    _assert_restored_and_up_to_date(repo, clone, outputs, **aws)
