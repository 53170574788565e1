"""``sigward package``: the Cloud Run functions (gen2) source archive, built reproducibly.

Layout (what Cloud Build expects; local packages are not pip-installed, they are imported from beside ``main.py``)::

    main.py            a copy of functions/main.py (it puts its own directory first on sys.path)
    requirements.txt   every runtime distribution pinned to the version installed here (see below)
    sigward/...        the package (core/ of the checkout), without tests, caches or hidden files
    policies/...       the policies given with --policy (main.py points SIGWARD_POLICY here when it is unset)

Reproducible: entries sorted by name, every timestamp 1980-01-01 00:00:00, every file mode 0644, no directory
entries, no extra fields, no comment, one fixed compression level. The same inputs with the same Python (zlib)
therefore give the same bytes, and the archive is named by its own hash: ``sigward-<first 12 hex of sha256>.zip``.

Pinning: ``requirements.txt`` is the transitive closure of pyproject's ``[project].dependencies`` (or, without a
source checkout, of the installed ``sigward`` distribution's requirements), each distribution pinned with ``==`` to
the version installed in the environment that runs ``sigward package`` — the environment the tests passed in.
Environment markers are evaluated for that environment, so package on Linux with CPython 3.11, as Cloud Run runs.
Hashes (``--require-hashes``) are not written: installed distributions do not record the hash of the wheel they came
from.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sigward.errors import BadRequestError, ConfigurationError, PolicyError

if TYPE_CHECKING:
    from sigward.policy.capabilities import Capabilities

ARCHIVE_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
COMPRESS_LEVEL = 9
POLICY_DIR = "policies"
POLICY_SUFFIXES = (".yaml", ".yml")
# The line functions/main.py must contain for bundled policies to take effect.
POLICY_DEFAULT_MARKER = 'os.environ.setdefault("SIGWARD_POLICY"'
_SKIP_DIRS = frozenset({"__pycache__", "tests", "test"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp")
_NOT_RUNTIME = frozenset({"sigward"})  # itself: it ships as sigward/ in the archive


@dataclass(frozen=True)
class PackageResult:
    path: Path
    sha256: str
    entries: tuple[str, ...]
    policies: tuple[str, ...]
    requirements: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "entries": len(self.entries),
            "policies": list(self.policies),
            "requirements": list(self.requirements),
        }


def source_root() -> Path:
    """The directory holding the package: a checkout (``core/`` + ``functions/``) or site-packages (``sigward/``)."""
    import sigward

    root = Path(sigward.__file__).resolve().parent.parent
    _layout(root)
    return root


def _layout(root: Path) -> tuple[Path, Path]:
    """(the package directory, functions' main.py) under ``root``, for a checkout or a wheel install."""
    if (root / "core" / "__init__.py").is_file() and (root / "functions" / "main.py").is_file():
        return root / "core", root / "functions" / "main.py"
    if (root / "sigward" / "functions" / "main.py").is_file():
        return root / "sigward", root / "sigward" / "functions" / "main.py"
    raise ConfigurationError(
        f"functions/main.py not found under {root}: package from a source checkout or a wheel install"
    )


# -- requirements ---------------------------------------------------------------------------------------------


def top_level_requirements(root: Path) -> list[str]:
    """pyproject's ``[project].dependencies`` when the checkout has one, else the installed distribution's."""
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        with open(pyproject, "rb") as fh:
            data = tomllib.load(fh)
        deps = data.get("project", {}).get("dependencies")
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise ConfigurationError(f"{pyproject}: [project].dependencies is not a list of requirement strings")
        return list(deps)
    from importlib import metadata

    try:
        requires = metadata.requires("sigward") or []
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            "no pyproject.toml and no installed sigward distribution to read requirements from"
        ) from None
    from packaging.requirements import Requirement

    return [r for r in requires if not _marker_wants_extra(Requirement(r))]


def _marker_wants_extra(req: object) -> bool:
    marker = getattr(req, "marker", None)
    return marker is not None and "extra" in str(marker)


def pinned_requirements(requirements: Iterable[str]) -> list[str]:
    """The transitive closure of ``requirements`` over the installed distributions, as sorted ``name==version``."""
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    pinned: dict[str, str] = {}
    seen_extras: dict[str, set[str]] = {}
    queue: list[tuple[Requirement, str]] = []

    def parse(text: str, origin: str) -> Requirement:
        try:
            return Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigurationError(f"{origin}: invalid requirement {text!r}: {exc}") from None

    for text in requirements:
        queue.append((parse(text, "pyproject.toml"), ""))
    while queue:
        req, extra = queue.pop(0)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name in _NOT_RUNTIME:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise ConfigurationError(
                f"requirement {req} is not installed here: install sigward's dependencies (pip install -e .) "
                "before packaging, so every pin is a version the tests ran with"
            ) from None
        version = dist.version
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            raise ConfigurationError(f"installed {dist.metadata['Name']} {version} does not satisfy {req}")
        new_extras = {canonicalize_name(e) for e in req.extras} - seen_extras.get(name, set())
        first = name not in pinned
        pinned[name] = version
        seen_extras.setdefault(name, set()).update(new_extras)
        wanted = ([""] if first else []) + sorted(new_extras)
        for sub in dist.requires or []:
            sub_req = parse(sub, f"{dist.metadata['Name']} {version}")
            for want in wanted:
                queue.append((sub_req, want))
    return [f"{name}=={pinned[name]}" for name in sorted(pinned)]


def requirements_text(pins: Sequence[str]) -> str:
    impl = sys.implementation.name
    where = f"{impl} {sys.version_info.major}.{sys.version_info.minor} on {sys.platform}"
    header = (
        "# Generated by `sigward package`: the transitive closure of sigward's runtime dependencies,\n"
        f"# each pinned to the version installed where it was packaged ({where}).\n"
    )
    return header + "".join(f"{pin}\n" for pin in pins)


# -- archive entries ------------------------------------------------------------------------------------------


def _package_files(package_dir: Path) -> dict[str, bytes]:
    """``sigward/<path>`` for every runtime file of the package (not the deployable targets: main.py is at the top)."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(package_dir):
        at_top = Path(dirpath) == package_dir
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".") and not (at_top and d == "functions")
        )
        for fname in filenames:
            path = Path(dirpath) / fname
            if fname.startswith(".") or fname.endswith(_SKIP_SUFFIXES) or path.is_symlink():
                continue
            if fname.startswith("test_") or fname.endswith("_test.py") or fname == "conftest.py":
                continue
            rel = path.relative_to(package_dir).as_posix()
            files[f"sigward/{rel}"] = path.read_bytes()
    return files


def _policy_files(paths: Sequence[str]) -> dict[str, bytes]:
    """``policies/<file name>`` for every policy file given (directories: their *.yaml/*.yml, not recursive)."""
    out: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in POLICY_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise BadRequestError(f"--policy {given}: no such file or directory")
        for f in files:
            name = f"{POLICY_DIR}/{f.name}"
            if name in out:
                raise BadRequestError(
                    f"two policy files would both be bundled as {name}: {origin[name]} and {f} (rename one)"
                )
            out[name] = f.read_bytes()
            origin[name] = str(f)
    return out


def archive_entries(
    policies: Sequence[str], *, root: Path | None = None, capabilities: Capabilities | None = None
) -> tuple[dict[str, bytes], list[str]]:
    """Every archive entry (name → bytes) and the pinned requirements; ``capabilities``: what the policies may use
    (the packaging process's, :meth:`sigward.wiring.Services.capabilities`)."""
    package_dir, main_path = _layout(root or source_root())
    main_py = main_path.read_bytes()
    policy_files = _policy_files(policies)
    if policy_files and POLICY_DEFAULT_MARKER.encode() not in main_py:
        raise ConfigurationError(
            "functions/main.py no longer points SIGWARD_POLICY at a bundled policies/ directory; "
            "bundled policies would be ignored"
        )
    if policies:
        from sigward.policy.loader import load_policies

        load_policies(list(policies), capabilities=capabilities)  # fails here (exit 2), not at the first cold start
        from sigward.cluster.sources import private_secrets

        leaking = private_secrets(list(policies))
        if leaking:
            raise BadRequestError(
                "refusing to bundle Secrets holding private material (ship only the public key, cosign.pub): "
                + "; ".join(leaking)
            )
    pins = pinned_requirements(top_level_requirements(package_dir.parent))
    entries = {"main.py": main_py, "requirements.txt": requirements_text(pins).encode()}
    entries.update(_package_files(package_dir))
    entries.update(policy_files)
    return entries, pins


def build_zip(entries: Mapping[str, bytes]) -> bytes:
    """The archive bytes: a pure function of ``entries`` (and of zlib at a fixed level)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ARCHIVE_DATE)
            info.create_system = 3  # unix, so the mode below is read
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name], compresslevel=COMPRESS_LEVEL)
    return buf.getvalue()


def connection_notes(policies: Sequence[str]) -> list[str]:
    """What the bundled policies read through the live cluster connection (Secrets are never shipped for them):
    the deployed function loads them only with a connection configured there too."""
    from sigward.policy.capabilities import for_cluster
    from sigward.policy.loader import load_policies

    try:
        load_policies(list(policies), capabilities=for_cluster(False))
    except PolicyError as exc:
        return [
            f"{problem.source}: {problem.path} is read through the cluster connection at run time: configure it "
            "for the deployed function (SIGWARD_KUBECONFIG, SIGWARD_CLUSTER_PROVIDER workload identity, or the "
            "in-cluster service account), or it refuses these policies at cold start"
            for problem in exc.problems
        ]
    return []


def archive_name(sha256_hex: str) -> str:
    return f"sigward-{sha256_hex[:12]}.zip"


def package(
    out_dir: str | os.PathLike[str],
    policies: Sequence[str] = (),
    *,
    root: Path | None = None,
    capabilities: Capabilities | None = None,
) -> PackageResult:
    entries, pins = archive_entries(policies, root=root, capabilities=capabilities)
    data = build_zip(entries)
    digest = hashlib.sha256(data).hexdigest()
    out = Path(out_dir)
    target = out / archive_name(digest)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{target.name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise BadRequestError(f"cannot write {target}: {exc.strerror}") from None
    notes: list[str] = []
    notes.extend(connection_notes(policies) if policies else ())
    if not policies:
        notes.append("no policies bundled: set SIGWARD_POLICY at deploy time (e.g. a Secret Manager volume)")
    if sys.platform != "linux" or sys.version_info[:2] != (3, 11):
        notes.append(
            f"requirements resolved on {sys.platform} Python {sys.version_info.major}.{sys.version_info.minor}; "
            "Cloud Run runs Linux CPython 3.11: package there for exact pins"
        )
    return PackageResult(
        path=target,
        sha256=digest,
        entries=tuple(sorted(entries)),
        policies=tuple(sorted(n for n in entries if n.startswith(f"{POLICY_DIR}/"))),
        requirements=tuple(pins),
        notes=tuple(notes),
    )
