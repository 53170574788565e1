"""Configuration that would open the cluster fails closed (issue 12 §7): a policy path that yields no verifyImages
policy is a problem, never "nothing to enforce"; policies in ``.json`` files (also tab-indented) load; image patterns
written in a non-normal form get a note saying how sigward reads them (issue 12 §1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sigward.errors import PolicyError
from sigward.policy.loader import MAX_YAML_DEPTH, load_policies, load_policy_text
from tests.unit.policy.test_policy_loader import CONFIGMAP, NAMESPACE, dump, policy, rule, verification

VALIDATE_ONLY = policy(rule(name="labels", validate={"pattern": {"metadata": {"labels": {"a": "b"}}}}), name="v")


def _problems(*paths: Path | str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policies(list(paths))
    return [str(p) for p in err.value.problems]


# name, files to write (name -> text), which path to load ("" = the directory), expected problem text
EMPTY_CASES = [
    ("empty_directory", {}, "", "no *.yaml, *.yml or *.json files"),
    ("only_other_suffixes", {"p.txt": dump(policy())}, "", "no *.yaml, *.yml or *.json files"),
    ("only_non_policy_docs", {"ns.yaml": dump(NAMESPACE, CONFIGMAP)}, "", "yields no ClusterPolicy or Policy"),
    ("file_only_non_policy_docs", {"ns.yaml": dump(NAMESPACE)}, "ns.yaml", "yields no ClusterPolicy or Policy"),
    ("file_only_empty_docs", {"e.yaml": "---\n---\n"}, "e.yaml", "yields no ClusterPolicy or Policy"),
    ("empty_file", {"e.yaml": ""}, "e.yaml", "yields no ClusterPolicy or Policy"),
    ("policy_without_verify_images", {"v.yaml": dump(VALIDATE_ONLY)}, "v.yaml", "yields no ClusterPolicy"),
    ("empty_json_list", {"l.json": json.dumps({"apiVersion": "v1", "kind": "List", "items": []})}, "", "yields no"),
]


@pytest.mark.parametrize(("name", "files", "target", "expected"), EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_policy_path_is_a_problem(
    tmp_path: Path, name: str, files: dict[str, str], target: str, expected: str
) -> None:
    for file_name, text in files.items():
        (tmp_path / file_name).write_text(text)
    path = tmp_path / target if target else tmp_path
    problems = _problems(path)
    assert any(expected in p and str(path) in p for p in problems), problems


def test_empty_policy_path_beside_a_good_one_still_fails(tmp_path: Path) -> None:
    good, empty = tmp_path / "good.yaml", tmp_path / "empty"
    good.write_text(dump(policy()))
    empty.mkdir()
    problems = _problems(good, empty)
    assert len(problems) == 1 and str(empty) in problems[0]


def test_empty_policy_path_list_is_a_problem() -> None:
    assert any("no policy path given" in p for p in _problems())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_empty_policy_path_only_unreadable_files(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(dump(policy()))
    f.chmod(0)
    assert any("cannot read" in p for p in _problems(tmp_path))


def test_a_directory_with_a_policy_and_other_docs_loads(tmp_path: Path) -> None:
    (tmp_path / "ns.yaml").write_text(dump(NAMESPACE))
    (tmp_path / "p.yaml").write_text(dump(policy()))
    loaded = load_policies([tmp_path])
    assert [p.name for p in loaded.policies] == ["verify-images"]


# --- JSON


def test_json_policy_file_loads(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(policy(name="from-json"), indent="\t"))
    (loaded,) = load_policies([f]).policies
    assert (loaded.name, loaded.source) == ("from-json", f"{f}#doc1")


def test_json_policy_in_a_directory_loads(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(policy(name="a"), indent=2))
    (tmp_path / "b.yaml").write_text(dump(policy(name="b")))
    assert [p.name for p in load_policies([tmp_path]).policies] == ["a", "b"]


def test_tab_indented_json_in_a_yaml_file_is_retried_as_json(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(json.dumps(policy(name="tabs"), indent="\t"))
    assert [p.name for p in load_policies([f]).policies] == ["tabs"]
    assert [p.name for p in load_policy_text(f.read_text(), "stdin").policies] == ["tabs"]


def test_tab_indented_yaml_stays_a_yaml_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nspec:\n\trules: []\n")
    assert any("invalid YAML" in p for p in _problems(f))


JSON_BAD_CASES = [
    ("not_json", "{apiVersion: kyverno.io/v1", "invalid JSON"),
    ("duplicate_key", '{"kind": "ClusterPolicy", "kind": "Namespace"}', "duplicate key 'kind'"),
    ("nan", '{"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": NaN}}', "NaN is not a JSON number"),
    ("too_deep", "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), "refused: JSON nested deeper"),
    ("recursion", "[" * 100_000 + "]" * 100_000, "refused: JSON nested deeper"),
    ("a_list_not_an_object", "[1, 2]", "not a Kubernetes object"),
]


@pytest.mark.parametrize(("name", "text", "expected"), JSON_BAD_CASES, ids=[c[0] for c in JSON_BAD_CASES])
def test_bad_json_policy_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(text)
    problems = _problems(f)
    assert any(expected in p for p in problems), problems


def test_invalid_json_policy_reports_yaml_paths(tmp_path: Path) -> None:
    doc = policy(rule(verification(imageReferences=[])))
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc, indent="\t"))
    assert any("spec.rules[0].verifyImages[0]" in p for p in _problems(f))


# --- notes on non-normal image patterns


NOTE_CASES = [
    ("imageReferences", "Registry.Example.com/*", "'Registry.Example.com/*' is matched as 'registry.example.com/*'"),
    ("imageReferences", "index.docker.io/nginx:*", "is matched as 'docker.io/nginx:*'"),
    ("imageReferences", "ghcr.io:443/acme/*", "is matched as 'ghcr.io/acme/*'"),
    ("imageReferences", "nginx:*", "'nginx:*' is matched as 'docker.io/nginx:*'"),
    ("skipImageReferences", "Ghcr.IO/acme/debug*", "is matched as 'ghcr.io/acme/debug*'"),
    ("skipImageReferences", "busybox:*", "names no registry, so it skips nothing"),
]


@pytest.mark.parametrize(("field", "pattern", "expected"), NOTE_CASES)
def test_non_normal_pattern_gets_a_note(field: str, pattern: str, expected: str) -> None:
    loaded = load_policy_text(dump(policy(rule(verification(**{field: [pattern]})))), "t.yaml")
    notes = [n for n in loaded.notes if f"verifyImages[0].{field}[0]" in n]
    assert len(notes) == 1 and expected in notes[0], loaded.notes


@pytest.mark.parametrize("pattern", ["ghcr.io/acme/*", "docker.io/nginx:*", "*", "localhost:5000/*"])
def test_normal_pattern_gets_no_note(pattern: str) -> None:
    loaded = load_policy_text(
        dump(policy(rule(verification(imageReferences=[pattern], skipImageReferences=[pattern])))), "t.yaml"
    )
    assert not [n for n in loaded.notes if "is matched as" in n or "names no registry" in n]
