"""Running the real ``terraform`` offline: providers only from the filesystem mirror (``/opt/tf-plugins``, where the
AWS provider sits), no checkpoint calls, no prompts, all state and lock files in the test's own directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIRROR = Path(os.environ.get("SIGWARD_TF_MIRROR", "/opt/tf-plugins"))
AWS_PROVIDER_VERSION = "5.100.0"
AWS_PROVIDER_DIR = MIRROR / "registry.terraform.io" / "hashicorp" / "aws" / AWS_PROVIDER_VERSION


def terraform_binary() -> str | None:
    return shutil.which("terraform") or (
        "/usr/local/bin/terraform" if Path("/usr/local/bin/terraform").is_file() else None
    )


def missing_reason(*, need_mirror: bool) -> str | None:
    """Why these tests cannot run here (None when they can)."""
    if terraform_binary() is None:
        return "terraform is not installed (expected /usr/local/bin/terraform)"
    if need_mirror and not AWS_PROVIDER_DIR.is_dir():
        return f"the AWS provider {AWS_PROVIDER_VERSION} is not in the filesystem mirror {MIRROR}"
    return None


@dataclass
class Terraform:
    """``terraform`` with a CLI configuration that installs providers from the mirror only."""

    workdir: Path
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cli_config = self.workdir / "terraform.tfrc"
        self.cli_config.write_text(
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f'    path    = "{MIRROR}"\n'
            '    include = ["registry.terraform.io/*/*"]\n'
            "  }\n"
            "}\n"
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
        env.update(
            {
                "TF_CLI_CONFIG_FILE": str(self.cli_config),
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "CHECKPOINT_DISABLE": "1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        return env

    def run(
        self, chdir: Path, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        binary = terraform_binary()
        assert binary is not None
        started = time.monotonic()
        proc = subprocess.run(
            [binary, f"-chdir={chdir}", *args, "-no-color"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[f"{chdir.name}:{args[0]}"] = time.monotonic() - started
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} in {chdir} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def init(self, chdir: Path) -> None:
        self.run(chdir, "init", "-input=false")

    def outputs(self, chdir: Path) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.run(chdir, "output", "-json").stdout)
        return {name: entry["value"] for name, entry in doc.items()}
