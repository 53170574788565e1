"""``type: Notary`` through the admission function (functions-framework) and the real docker-registry: Notation
signatures made by sigward's signer (JWS and COSE) admit the image and pin its tag to the digest; digest-pinned
images on ``/validate``; and the negative twins (untrusted root, tampered, replayed, unsigned, a pinned digest
that is not the signed one) are denied with notation-go's wording."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.notation import TestCA, make_ca, sign_pushed
from tests.support.policies import cluster_policy
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry


@dataclass(frozen=True)
class NotaryImages:
    trusted: TestCA
    digests: dict[str, str]  # case name -> pushed image digest


@pytest.fixture(scope="module")
def notary_images(registry: LocalRegistry) -> NotaryImages:
    trusted, other = make_ca("adm"), make_ca("adm other", ec_key=True)
    digests: dict[str, str] = {}
    cases: list[tuple[str, TestCA | None, dict[str, Any]]] = [
        ("jws", trusted, {"envelope_format": "jws"}),
        ("cose", trusted, {"envelope_format": "cose"}),
        ("untrusted", other, {}),
        ("tampered", trusted, {"tamper": True}),
        ("replayed", trusted, {"subject_digest": "sha256:" + "1" * 64}),
        ("unsigned", None, {}),
    ]
    for name, signer, kwargs in cases:
        repo = f"adm-notary/{name}"
        digests[name] = registry.push_image(repo, tag="v1")
        if signer is not None:
            sign_pushed(registry, repo, digests[name], signer, **kwargs)
    # an unsigned image in a signed image's repository: a pinned digest must be verified itself, not its tag's
    digests["jws-unsigned-sibling"] = registry.push_image("adm-notary/jws", tag="sibling")
    return NotaryImages(trusted=trusted, digests=digests)


def notary_admission_policy(host: str, ca: TestCA) -> dict[str, Any]:
    return cluster_policy(
        "notary-admission",
        [
            {
                "type": "Notary",
                "imageReferences": [f"{host}/adm-notary/*"],
                "attestors": [{"count": 1, "entries": [{"certificates": {"cert": ca.root_pem}}]}],
            }
        ],
    )


def decide(env: AdmissionEnv, request: dict[str, Any], path: str) -> dict[str, Any]:
    resp = env.post(path, review(request))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response: dict[str, Any] = resp.get_json()["response"]
    return response


# case, image form ("tag" | "digest" | "foreign-digest"), path, allowed, text in the denial
CASES = [
    ("jws", "tag", "/mutate", True, ""),
    ("cose", "tag", "/mutate", True, ""),
    ("jws", "digest", "/validate", True, ""),
    ("cose", "digest", "/mutate", True, ""),
    ("jws", "foreign-digest", "/mutate", False, "make sure the artifact was signed successfully"),
    ("untrusted", "tag", "/mutate", False, "does not contain any trusted certificate"),
    ("tampered", "tag", "/mutate", False, "signature is invalid"),
    ("replayed", "tag", "/mutate", False, "targetArtifact"),
    ("unsigned", "tag", "/mutate", False, "make sure the artifact was signed successfully"),
    ("unsigned", "digest", "/validate", False, "unverified image"),
    ("tampered", "digest", "/validate", False, "unverified image"),
]


@pytest.mark.parametrize(("case", "form", "path", "allowed", "text"), CASES)
def test_notary_admission(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    notary_images: NotaryImages,
    case: str,
    form: str,
    path: str,
    allowed: bool,
    text: str,
) -> None:
    host = adm_images.host
    env = admission_env(notary_admission_policy(host, notary_images.trusted))
    base = f"{host}/adm-notary/{case}"
    digest = notary_images.digests[case]
    image = {
        "tag": f"{base}:v1",
        "digest": f"{base}@{digest}",
        # the signed tag pinned to another digest of the same repository (one without a Notation signature)
        "foreign-digest": f"{base}:v1@{notary_images.digests.get(f'{case}-unsigned-sibling', '')}",
    }[form]
    response = decide(env, pod_request(pod(image)), path)
    assert response["allowed"] is allowed, response
    if not allowed:
        assert text in response["status"]["message"]
        return
    patch = decode_patch({"response": response})
    if form == "tag":
        assert patch == [{"op": "replace", "path": "/spec/containers/0/image", "value": f"{base}:v1@{digest}"}]
    else:
        assert patch == []
