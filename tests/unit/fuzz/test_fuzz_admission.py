"""Fuzzing the admission function's HTTP contract (``handle_admission``) over an in-memory registry.

Whatever the body, the answer is a 400 with a message or an AdmissionReview (a 500 would let a ``failurePolicy:
Ignore`` webhook admit the Pod), and a valid review of a Pod with an image the registry has not signed is never
allowed. The registry here is a :class:`~tests.support.memory.MemorySignatureSource`: the engine's exact code path,
no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sigward.admission.http import HttpResponse, handle_admission
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.errors import BadRequestError
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference, wildcard_match
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.admission import pod, pod_request, review
from tests.support.fuzzing import SETTINGS, byte_mutations, dumps, json_values, mutations
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key, signed_layer

HOST = "registry.test"
PATTERN = f"{HOST}/*"
SIGNED = f"{HOST}/app/signed:v1"
SIGNED_DIGEST = "sha256:" + "5" * 64
SIGNED_PINNED = f"{HOST}/app/signed@{SIGNED_DIGEST}"
UNSIGNED = f"{HOST}/app/unsigned:v1"
UNSIGNED_DIGEST = "sha256:" + "6" * 64
KEY = new_key("p256", slot=64)
TOKEN = "fuzz-admission-token-0123456789"


@cache
def service() -> AdmissionService:
    source = MemorySignatureSource()
    source.add_image(SIGNED, SIGNED_DIGEST)
    source.add_image(UNSIGNED, UNSIGNED_DIGEST)
    s = signed_layer(KEY, image_digest=SIGNED_DIGEST)
    layer = SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))
    source.add_signatures(f"{HOST}/app/signed", SIGNED_DIGEST, (layer,))
    doc = cluster_policy("fuzz", [key_verification([PATTERN], [keys_entry(KEY.public_pem)])], failure_policy="Fail")
    policies = load_policy_text(dump(doc), "fuzz.yaml").policies
    return AdmissionService(
        policies=lambda: policies,
        verifier=Verifier(source=source),
        settings=AdmissionSettings(deadline_seconds=5.0, workers=4),
    )


def call(body: bytes, *, path: str = "/mutate", headers: Mapping[str, str] | None = None, env: Any = None) -> Any:
    resp = handle_admission(
        method="POST", path=path, headers=dict(headers or {}), body=body, service=service, environ=env or {}
    )
    return check_contract(resp)


def check_contract(resp: HttpResponse) -> Any:
    """400/401/405 with an error message, or 200 with an AdmissionReview v1 response; nothing else."""
    assert resp.status in (200, 400, 401, 405), resp
    doc = json.loads(resp.body)
    assert isinstance(doc, dict)
    if resp.status != 200:
        assert isinstance(doc.get("error"), str) and doc["error"]
        assert "Traceback" not in doc["error"]
        return None
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
    response = doc["response"]
    assert isinstance(response["uid"], str) and response["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert isinstance(response["status"]["message"], str)
    return response


VALID_REVIEW = review(pod_request(pod(UNSIGNED, init=(SIGNED,), ephemeral=(SIGNED_PINNED,))))


@SETTINGS
@given(body=st.binary(max_size=400))
@example(body=b"")
@example(body=b"\xff\xfe{\x00")
@example(body=b"[" * 200 + b"]" * 200)
@example(body=b'{"a": ' + b"1" * 5000 + b"}")
def test_arbitrary_bytes(body: bytes) -> None:
    call(body)


@SETTINGS
@given(doc=json_values)
def test_arbitrary_json(doc: Any) -> None:
    call(dumps(doc))


@SETTINGS
@given(doc=mutations(VALID_REVIEW), path=st.sampled_from(["/mutate", "/validate", "/", "/x/validate/"]))
def test_mutated_reviews(doc: Any, path: str) -> None:
    response = call(dumps(doc), path=path)
    if response is None:
        return
    request = doc.get("request") if isinstance(doc, dict) else None
    assert isinstance(request, dict) and response["uid"] == request.get("uid")
    if response["allowed"] and request.get("operation") == "CREATE":
        # The unsigned container is still there, unchanged, in a Pod: the request must not be allowed.
        obj = request.get("object")
        unchanged = (
            request.get("kind") == VALID_REVIEW["request"]["kind"]
            and isinstance(obj, dict)
            and obj.get("spec") == VALID_REVIEW["request"]["object"]["spec"]
            and obj.get("metadata") == VALID_REVIEW["request"]["object"]["metadata"]
        )
        assert not unchanged, response


@SETTINGS
@given(raw=byte_mutations(dumps(VALID_REVIEW)))
def test_damaged_review_bytes(raw: bytes) -> None:
    call(raw)


# -- the oracle: unsigned images matched by the policy are never allowed -----------------------------------------------

images = st.one_of(
    st.sampled_from([SIGNED, SIGNED_PINNED, UNSIGNED, f"{UNSIGNED}@{UNSIGNED_DIGEST}", "docker.io/library/nginx:1"]),
    st.from_regex(
        r"registry\.test/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-z0-9.]{1,8}|@sha256:[0-9a-f]{64})?", fullmatch=True
    ),
    st.sampled_from([f"{HOST}/App:v1", f"{HOST}/app:v1 ", f"{HOST}/app@sha256:abc", "registry.test"]),
)


def expected_allowed(all_images: list[str]) -> bool:
    for image in all_images:
        if not image.strip():
            continue  # no image at all: nothing to verify (the API server refuses such a Pod)
        try:
            ref = parse_image_reference(image)
        except BadRequestError:
            return False  # sigward cannot decide: denied
        if not wildcard_match(PATTERN, ref.reference):
            continue
        if ref.repository != f"{HOST}/app/signed" or (ref.digest and ref.digest != SIGNED_DIGEST):
            return False
    return True


@SETTINGS
@given(
    containers=st.lists(images, min_size=1, max_size=3),
    init=st.lists(images, max_size=2),
    ephemeral=st.lists(images, max_size=2),
    path=st.sampled_from(["/mutate", "/validate"]),
    dry_run=st.booleans(),
)
@example(containers=[SIGNED, UNSIGNED], init=[], ephemeral=[], path="/mutate", dry_run=False)
@example(containers=[SIGNED], init=[], ephemeral=[f"{UNSIGNED}@{UNSIGNED_DIGEST}"], path="/mutate", dry_run=True)
def test_unsigned_images_are_never_allowed(
    containers: list[str], init: list[str], ephemeral: list[str], path: str, dry_run: bool
) -> None:
    obj = pod(*containers, init=tuple(init), ephemeral=tuple(ephemeral))
    request = pod_request(obj, dry_run=dry_run)
    response = call(dumps(review(request)), path=path)
    assert response is not None and response["uid"] == request["uid"]
    everything = containers + init + ephemeral
    if path == "/validate":
        # validate also requires a digest (verifyDigest): a tag is denied, so only the pinned forms can pass
        allowed = expected_allowed(everything) and all(
            "@" in i or not wildcard_match(PATTERN, _reference_or(i)) for i in everything if i.strip()
        )
    else:
        allowed = expected_allowed(everything)
    assert response["allowed"] is allowed, (everything, response)


def _reference_or(image: str) -> str:
    try:
        return parse_image_reference(image).reference
    except BadRequestError:
        return image


# -- authentication ----------------------------------------------------------------------------------------------------

paths = st.lists(
    st.sampled_from([TOKEN, TOKEN + "x", TOKEN[:-1], "..", ".", "", "mutate", "validate", "%2e"]), max_size=4
)


@SETTINGS
@given(
    segments=paths,
    authorization=st.none() | st.sampled_from([f"Bearer {TOKEN}", f"bearer  {TOKEN} ", "Bearer x", TOKEN, "Basic x"]),
    body=st.sampled_from([b"{not json", dumps(VALID_REVIEW)]),
    method=st.sampled_from(["POST", "GET", "PUT", "post"]),
)
def test_token_is_checked_first_and_never_echoed(
    segments: list[str], authorization: str | None, body: bytes, method: str
) -> None:
    path = "/" + "/".join(segments)
    headers = {"Authorization": authorization} if authorization is not None else {}
    resp = handle_admission(
        method=method,
        path=path,
        headers=headers,
        body=body,
        service=service,
        environ={"SIGWARD_ADMISSION_TOKEN": TOKEN},
    )
    check_contract(resp)
    authorized = TOKEN in segments or (
        authorization is not None and authorization[:7].lower() == "bearer " and authorization[7:].strip() == TOKEN
    )
    if not authorized:
        assert resp.status == 401
    elif method.upper() != "POST":
        assert resp.status == 405
    else:
        assert resp.status in (200, 400)
    assert TOKEN.encode() not in resp.body
