"""``sigward package``: the archive is byte-for-byte reproducible, and once unpacked it is a working Cloud Run
functions source — a fresh virtualenv that cannot see this checkout serves the ``admission`` target from it under
the real functions-framework, importing ``sigward`` from the archive only."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sigward.cli import run
from sigward.package import ARCHIVE_DATE, FILE_MODE, archive_name, package
from tests.support.admission import pod, review
from tests.support.netutil import free_port

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "core" / "data" / "example-policy.yaml"
TOKEN = "path-token-0123456789abcdef"


def _source_copy(dest: Path) -> Path:
    """The parts of the checkout the packager reads, copied (so concurrent edits cannot race the comparison)."""
    dest.mkdir(parents=True)
    shutil.copytree(REPO / "core", dest / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "functions").mkdir()
    shutil.copy2(REPO / "functions" / "main.py", dest / "functions" / "main.py")
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One archive built from a copy of the checkout, and that copy."""
    root = _source_copy(tmp_path_factory.mktemp("src") / "checkout")
    result = package(tmp_path_factory.mktemp("dist"), [str(POLICY)], root=root)
    return result.path, root


def test_same_inputs_give_the_same_bytes_whatever_the_mtimes_modes_and_caches(
    archive: tuple[Path, Path], tmp_path: Path
) -> None:
    first, root = archive
    again = package(tmp_path / "again", [str(POLICY)], root=root)
    assert again.path.read_bytes() == first.read_bytes()

    # A second copy whose files have other timestamps and modes and which carries byte-code caches and dotfiles.
    other = tmp_path / "other"
    shutil.copytree(root, other)
    for i, path in enumerate(sorted(p for p in other.rglob("*") if p.is_file())):
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
        path.chmod(0o600 if i % 2 else 0o755)
    (other / "core" / "__pycache__").mkdir(exist_ok=True)
    (other / "core" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0junk")
    (other / "core" / ".editor.swp").write_bytes(b"junk")
    policy_copy = tmp_path / "policy" / POLICY.name
    policy_copy.parent.mkdir()
    shutil.copy(POLICY, policy_copy)
    os.utime(policy_copy, (1_600_000_000, 1_600_000_000))
    third = package(tmp_path / "third", [str(policy_copy)], root=other)

    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert again.sha256 == third.sha256 == digest
    assert first.name == third.path.name == archive_name(digest) == f"sigward-{digest[:12]}.zip"


def test_archive_layout(archive: tuple[Path, Path]) -> None:
    path, root = archive
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        for info in infos:
            assert info.date_time == ARCHIVE_DATE
            assert info.external_attr >> 16 == FILE_MODE
            assert info.extra == b""
            assert not info.is_dir()
        assert zf.comment == b""
        assert zf.read("main.py") == (root / "functions" / "main.py").read_bytes()
        requirements = zf.read("requirements.txt").decode()
        assert zf.read("policies/example-policy.yaml") == POLICY.read_bytes()
    assert "sigward/__init__.py" in names and "sigward/admission/http.py" in names and "sigward/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    assert {n.split("/")[0] for n in names} == {"main.py", "requirements.txt", "sigward", "policies"}
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert [p.split("==")[0] for p in pins] == sorted(p.split("==")[0] for p in pins)
    assert all("==" in pin for pin in pins)
    names_pinned = {pin.split("==")[0] for pin in pins}
    # the top-level dependencies and some of their own (the closure is pinned)
    assert {"functions-framework", "boto3", "google-cloud-firestore", "flask", "botocore", "gunicorn"} <= names_pinned
    assert "sigward" not in names_pinned and "pytest" not in names_pinned and "moto" not in names_pinned


def test_cli_prints_sha256sum_line_and_refuses_a_broken_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["package", "--out", str(tmp_path / "dist"), "--policy", str(POLICY)]) == 0
    line = capsys.readouterr().out.strip()
    digest, _, path = line.partition("  ")
    assert Path(path).name == f"sigward-{digest[:12]}.zip"
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x}\nspec: {rules: 3}\n")
    assert run(["package", "--out", str(tmp_path / "dist2"), "--policy", str(broken)]) == 2
    assert not (tmp_path / "dist2").exists()
    assert run(["package", "--out", str(tmp_path / "dist3"), "--policy", str(tmp_path / "missing.yaml")]) == 2


# -- the unpacked archive, served by functions-framework from a fresh virtualenv -----------------------------------


def _fresh_venv(where: Path) -> Path:
    """A virtualenv without pip whose only view of installed distributions is this venv's site-packages directory
    as a plain path entry: its ``.pth`` files (among them sigward's editable-install finder) are not processed, so
    ``sigward`` can come from nowhere but the unpacked archive."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    host_site = sysconfig.get_paths()["purelib"]
    Path(site, "host-dependencies.pth").write_text(host_site + "\n")
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGWARD_", "PYTHON", "VIRTUAL_ENV", "GOOGLE_", "AWS_", "AZURE_"))
    }
    env["SIGWARD_TUF_OFFLINE"] = "1"  # no internet in the suite: the bundled trusted root, no TUF refresh
    env.update(extra)
    return env


@contextlib.contextmanager
def _functions_framework(python: Path, source_dir: Path, log: Path, **env: str) -> Iterator[str]:
    port = free_port()
    command = [str(python), "-m", "functions_framework", "--target", "admission", "--source", "main.py"]
    with _server([*command, "--host", "127.0.0.1", "--port", str(port)], source_dir, log, env) as base:
        yield base


@contextlib.contextmanager
def _server(command: list[str], cwd: Path, log: Path, env: dict[str, str]) -> Iterator[str]:
    port = int(command[command.index("--port") + 1]) if "--port" in command else int(env["PORT"])
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=_clean_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{command[2]} exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"{command[2]} did not answer within 20 s: {log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_unpacked_archive_serves_admission_from_a_fresh_venv(archive: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = archive
    source = tmp_path / "workspace"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(source)
    python = _fresh_venv(tmp_path / "venv")

    # Outside the archive, the fresh venv knows no `sigward` (this checkout is invisible to it) ...
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('sigward'))"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert probe.stdout.strip() == "None"
    # ... and loading main.py as functions-framework does imports sigward from beside it, policies from policies/.
    loaded = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, json, os, sys\n"
            "spec = importlib.util.spec_from_file_location('main', 'main.py')\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "import sigward, flask\n"
            "print(json.dumps({'sigward': sigward.__file__, 'flask': flask.__file__,"
            " 'policy': os.environ.get('SIGWARD_POLICY')}))",
        ],
        cwd=source,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where = json.loads(loaded.stdout)
    assert Path(where["sigward"]).resolve().is_relative_to(source.resolve())
    assert Path(where["flask"]).resolve().is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    assert where["policy"] == str(source / "policies")

    log = tmp_path / "functions-framework.log"
    with _functions_framework(python, source, log, SIGWARD_STORE="memory:", SIGWARD_ADMISSION_TOKEN=TOKEN) as base:
        uid = str(uuid.uuid4())
        request = {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": pod(),
            "dryRun": False,
        }
        resp = requests.post(f"{base}/{TOKEN}/mutate", json=review(request), timeout=15)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
        assert doc["response"]["uid"] == uid and doc["response"]["allowed"] is True

        malformed = requests.post(
            f"{base}/{TOKEN}/mutate", data=b'{"apiVersion": "admission.k8s.io/v1", "kind": "Nope"', timeout=15
        )
        assert malformed.status_code == 400
        assert "error" in malformed.json()

        no_token = requests.post(f"{base}/mutate", json=review(request), timeout=15)
        assert no_token.status_code == 401
    assert "Traceback" not in log.read_text()

    # What the container image runs (infra/container/Dockerfile): `python -m sigward.cli serve` with the archive on
    # PYTHONPATH, from another directory, the port from $PORT.
    port = free_port()
    env = {"PYTHONPATH": str(source), "SIGWARD_POLICY": str(source / "policies"), "SIGWARD_STORE": "memory:"}
    command = [str(python), "-m", "sigward.cli", "serve", "--host", "127.0.0.1"]
    with _server(command, tmp_path, tmp_path / "serve.log", {**env, "PORT": str(port)}) as base:
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "policies": ["require-signed-images"]}
