"""Coverage-guided fuzzing of sigward's parsers with atheris (libFuzzer), beyond the bounded hypothesis properties of
tests/unit/fuzz. Not part of the test suite; run one target at a time for as long as you like:

    .venv/bin/pip install atheris            # a manylinux wheel exists for CPython 3.11 on x86_64
    .venv/bin/python scripts/fuzz_atheris.py seed corpus          # valid documents to start from, per target
    .venv/bin/python scripts/fuzz_atheris.py TARGET [libFuzzer flags] corpus/TARGET
                                            # e.g. -max_total_time=600 -max_len=8192

Targets: admission, reference, policy, manifest, dsse, statement, simplesigning, rekor, bundle, pem, trustedroot,
kmsuri, challenge, token. A crash is any exception that is not sigward's own error (``sigward.errors.SigwardError``,
plus ``ChallengeError`` for the WWW-Authenticate parser, whose contract it is); libFuzzer saves the input as
``crash-<sha1>``. Everything runs in-process and offline: the admission target uses an in-memory signature source.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["sigward"]):
    from sigward.admission.http import handle_admission
    from sigward.admission.service import AdmissionService, AdmissionSettings
    from sigward.errors import SigwardError
    from sigward.policy.kms_uri import parse_kms_uri
    from sigward.policy.loader import load_policy_text
    from sigward.references import parse_image_reference, wildcard_match
    from sigward.registry.auth import ChallengeError, _parse_token_response, parse_www_authenticate
    from sigward.registry.models import Manifest, compute_digest
    from sigward.verify.bundles import parse_bundle
    from sigward.verify.dsse import Envelope, parse_envelope, parse_statement
    from sigward.verify.engine import Verifier
    from sigward.verify.rekor import verify_set
    from sigward.verify.simplesigning import parse_payload
    from sigward.verify.trust import load_trusted_root, parse_trusted_root
    from sigward.verify.x509chain import load_certificates_pem


def _admission_service() -> AdmissionService:
    from tests.support.memory import MemorySignatureSource
    from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
    from tests.support.signing import new_key

    doc = cluster_policy("fuzz", [key_verification(["registry.test/*"], [keys_entry(new_key().public_pem)])])
    policies = load_policy_text(dump(doc), "fuzz.yaml").policies
    return AdmissionService(
        policies=lambda: policies,
        verifier=Verifier(source=MemorySignatureSource()),
        settings=AdmissionSettings(deadline_seconds=5.0, workers=2),
    )


_SERVICE: AdmissionService | None = None


def admission(data: bytes) -> None:
    global _SERVICE  # noqa: PLW0603 - built once per fuzzing process
    if _SERVICE is None:
        _SERVICE = _admission_service()
    service = _SERVICE
    resp = handle_admission(method="POST", path="/mutate", headers={}, body=data, service=lambda: service, environ={})
    if resp.status not in (200, 400):
        raise AssertionError(f"status {resp.status}")
    doc = json.loads(resp.body)
    if resp.status == 200 and doc["response"]["allowed"]:
        # the memory registry has nothing signed: a Pod with an image under registry.test can never be allowed
        request = json.loads(data).get("request", {})
        obj = request.get("object") or {}
        spec = obj.get("spec") if isinstance(obj, dict) else None
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if (
            request.get("operation") == "CREATE"
            and request.get("kind", {}).get("kind") == "Pod"
            and not request.get("oldObject")
        ):
            for c in containers if isinstance(containers, list) else []:
                image = c.get("image") if isinstance(c, dict) else None
                if isinstance(image, str) and image.strip():
                    try:
                        ref = parse_image_reference(image)
                    except SigwardError:
                        continue
                    if wildcard_match("registry.test/*", ref.reference):
                        raise AssertionError(f"allowed an unsigned image: {image!r}")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


TARGETS: dict[str, Callable[[bytes], Any]] = {
    "admission": admission,
    "reference": lambda d: parse_image_reference(_text(d)),
    "policy": lambda d: load_policy_text(_text(d), "fuzz.yaml"),
    "manifest": lambda d: Manifest.parse(d, digest=compute_digest(d), content_type="", where="fuzz").validate(),
    "dsse": parse_envelope,
    "statement": lambda d: parse_statement(Envelope("application/vnd.in-toto+json", d, (b"s",))),
    "simplesigning": parse_payload,
    "rekor": lambda d: verify_set(d, logs=load_trusted_root().tlogs),
    "bundle": parse_bundle,
    "pem": lambda d: load_certificates_pem(d, what="fuzz"),
    "trustedroot": lambda d: parse_trusted_root(d, source="fuzz"),
    "kmsuri": lambda d: parse_kms_uri(_text(d)),
    "challenge": lambda d: parse_www_authenticate(_text(d)),
    "token": lambda d: _parse_token_response(d, "fuzz"),
}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target (made with the test suite's own builders), so mutation starts past the JSON syntax."""
    from sigward.verify.simplesigning import make_payload
    from sigward.verify.trust import _public_good_bytes
    from tests.support import bundles
    from tests.support.admission import pod, pod_request, review
    from tests.support.fulcio import make_fulcio, pems
    from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
    from tests.support.signing import dsse_envelope, in_toto_statement, new_key, rekor_bundle, signed_layer

    key = new_key()
    digest = "sha256:" + "d" * 64
    statement = json.dumps(in_toto_statement(digest, "https://slsa.dev/provenance/v1", {"a": 1})).encode()
    layer = signed_layer(key, image_digest=digest)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 2},
        "layers": [{"mediaType": "x/y", "digest": digest, "size": 1, "annotations": {"a": "b"}}],
    }
    policy = cluster_policy("seed", [key_verification(["registry.test/*"], [keys_entry(key.public_pem)])])
    return {
        "admission": [json.dumps(review(pod_request(pod("registry.test/app:v1", init=("nginx",))))).encode()],
        "reference": [b"registry.test/app:v1", b"ghcr.io/org/app@" + digest.encode(), b"[::1]:5000/a/b"],
        "policy": [dump(policy).encode()],
        "manifest": [json.dumps(manifest).encode()],
        "dsse": [dsse_envelope(key, statement)],
        "statement": [statement],
        "simplesigning": [make_payload(docker_reference="registry.test/app", manifest_digest=digest)],
        "rekor": [
            rekor_bundle(
                key,
                payload=layer.payload,
                signature_b64=layer.annotations["dev.cosignproject.cosign/signature"],
                signer_public_pem=key.public_pem,
            ).encode()
        ],
        "bundle": [
            bundles.encode(bundles.dsse_bundle(key, bundles.statement(digest))),
            bundles.encode(bundles.message_bundle(key, bytes.fromhex("d" * 64))),
        ],
        "pem": [pems([make_fulcio().intermediate, make_fulcio().root]).encode()],
        "trustedroot": [_public_good_bytes()],
        "kmsuri": [b"awskms:///alias/x", b"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", b"hashivault://k"],
        "challenge": [b'Bearer realm="https://auth.example/token",service="r",scope="repository:a:pull"'],
        "token": [b'{"token": "abc", "expires_in": 300}'],
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "seed":
        for name, inputs in seeds().items():
            directory = Path(sys.argv[2]) / name
            directory.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(inputs):
                (directory / f"seed-{i}").write_bytes(data)
        return
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except (SigwardError, ChallengeError):
            return

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
