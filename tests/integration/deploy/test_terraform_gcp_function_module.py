"""terraform/gcp's functions are one local module (``modules/function``) called once per function, and ``moved``
blocks carry deployments made before that over without recreating a function (a new function is a new URL and a
cold start; the admission webhook's URL is in the cluster's webhook configuration).

The module is read statically (the Google provider cannot be downloaded here). The ``moved`` blocks are checked with
the real ``terraform``: the same addresses, as built-in ``terraform_data`` resources, applied in the old layout and
planned in the new one must move and change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deploy.test_terraform_gcp import FUNCTION_MODULE, FUNCTIONS, GCP, load_with_functions
from tests.support.hcl import block, load_module
from tests.support.terraform import Terraform, missing_reason

FUNCTION_TYPE = "google_cloudfunctions2_function"
_MOVED_FROM = re.compile(r"^\$\{google_cloudfunctions2_function\.([a-z_]+)(\[0\])?\}$")
_MOVED_TO = re.compile(r"^\$\{module\.([a-z_]+)(\[0\])?\.google_cloudfunctions2_function\.this\}$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_module(GCP)


def test_every_function_is_a_call_of_the_one_module(raw: dict[str, Any]) -> None:
    assert FUNCTION_TYPE not in raw["resource"], "a function written inline instead of through modules/function"
    calls = {name for name, args in raw["module"].items() if args["source"] == FUNCTION_MODULE}
    assert calls == set(FUNCTIONS)
    child = load_module(GCP / "modules" / "function")
    assert list(child["resource"]) == [FUNCTION_TYPE] and list(child["resource"][FUNCTION_TYPE]) == ["this"]
    this = child["resource"][FUNCTION_TYPE]["this"]
    assert block(this, "build_config")["runtime"] == "python311"
    service = block(this, "service_config")
    assert service["available_cpu"] == "1" and service["all_traffic_on_latest_revision"] is True
    # What differs between functions is a variable; each is described.
    for name, variable in child["variable"].items():
        assert variable.get("description"), name
    assert set(child["output"]) == {"name", "url", "uri"}
    assert child["output"]["uri"]["value"] == "${google_cloudfunctions2_function.this.service_config[0].uri}"
    # The child pins the same provider range as the root module.
    (root_tf,) = raw["terraform"]
    (child_tf,) = child["terraform"]
    assert child_tf["required_providers"][0]["google"] == root_tf["required_providers"][0]["google"]


def test_optional_functions_keep_their_switch() -> None:
    rendered = load_with_functions()["resource"][FUNCTION_TYPE]
    assert "count" not in rendered["admission"]
    assert rendered["push_pubsub"]["count"] == "${var.push_pubsub_enabled ? 1 : 0}"
    assert rendered["push_webhook"]["count"] == "${var.push_webhook_enabled ? 1 : 0}"
    assert rendered["reverify"]["count"] == "${var.reverify_enabled ? 1 : 0}"
    # HTTP functions have no event trigger; push_pubsub only when delivered by Eventarc.
    for name in ("admission", "push_webhook", "reverify"):
        assert "event_trigger" not in rendered[name] and "dynamic" not in rendered[name], name
    # Secrets as secret references only: the admission token, the push secret; none for the others.
    keys = {
        name: [s["key"] for s in block(rendered[name], "service_config").get("secret_environment_variables", [])]
        for name in FUNCTIONS
    }
    assert keys == {
        "admission": ["SIGWARD_ADMISSION_TOKEN"],
        "push_pubsub": [],
        "push_webhook": ["SIGWARD_PUSH_SECRET"],
        "reverify": [],
    }


def test_a_moved_block_for_every_function(raw: dict[str, Any]) -> None:
    moves = {}
    for moved in raw["moved"]:
        source, target = _MOVED_FROM.match(moved["from"]), _MOVED_TO.match(moved["to"])
        assert source and target, moved
        assert source.group(1) == target.group(1), moved  # each function keeps its name
        assert source.group(2) == target.group(2), moved  # a counted resource moves into the counted call
        moves[source.group(1)] = bool(source.group(2))
    assert moves == {name: "count" in raw["module"][name] for name in FUNCTIONS}


@pytest.mark.skipif(bool(missing_reason(need_mirror=False)), reason=str(missing_reason(need_mirror=False)))
def test_moved_blocks_move_existing_functions_without_recreating_them(raw: dict[str, Any], tmp_path: Path) -> None:
    """The moved blocks of terraform/gcp, verbatim but for the resource type, applied to a state made with the
    old addresses: terraform plans moves only (no create, no destroy), for enabled and disabled functions alike."""
    tf = Terraform(tmp_path / "tf")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    lines = []
    for moved in raw["moved"]:
        name = _MOVED_FROM.match(moved["from"]).group(1)  # type: ignore[union-attr]
        counted = "count" in raw["module"][name]
        lines.append(
            f'resource "terraform_data" "{name}" {{\n  {"count = 1" if counted else ""}\n  input = "{name}"\n}}'
        )
    (old / "main.tf").write_text("\n".join(lines))
    tf.init(old)
    tf.run(old, "apply", "-auto-approve", "-input=false")
    (new / "modules" / "function").mkdir(parents=True)
    (new / "modules" / "function" / "main.tf").write_text(
        'variable "input" {\n  type = string\n}\nresource "terraform_data" "this" {\n  input = var.input\n}\n'
    )
    calls = []
    for name in FUNCTIONS:
        count = "count = 1" if "count" in raw["module"][name] else ""
        calls.append(f'module "{name}" {{\n  source = "./modules/function"\n  {count}\n  input = "{name}"\n}}')
    moved_tf = (GCP / "moved.tf").read_text().replace(FUNCTION_TYPE, "terraform_data")
    (new / "main.tf").write_text("\n".join(calls) + "\n" + moved_tf)
    (new / "terraform.tfstate").write_bytes((old / "terraform.tfstate").read_bytes())
    tf.init(new)
    tf.run(new, "plan", "-input=false", "-out=plan.bin")
    plan = json.loads(tf.run(new, "show", "-json", "plan.bin").stdout)
    changes = {c["address"]: c for c in plan["resource_changes"]}
    assert set(changes) == {
        f"module.{name}{'[0]' if 'count' in raw['module'][name] else ''}.terraform_data.this" for name in FUNCTIONS
    }
    for address, change in changes.items():
        assert change["change"]["actions"] == ["no-op"], (address, change["change"]["actions"])
        assert change.get("previous_address", "").startswith("terraform_data."), address
    # A disabled function (count = 0 before and after) has nothing to move and nothing is created.
    (new / "main.tf").write_text("\n".join(c.replace("count = 1", "count = 0") for c in calls) + "\n" + moved_tf)
    (new / "terraform.tfstate").unlink()
    plan_off = tf.run(new, "plan", "-input=false", "-detailed-exitcode", check=False)
    assert plan_off.returncode == 2 and "1 to add, 0 to change, 0 to destroy" in plan_off.stdout, plan_off.stdout
