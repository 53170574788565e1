"""``keys.ctlog.tsaCertChain`` on key-signed cosign layers (issue 15, kyverno-tests ``keyed-tsa``): cosign's rule
as Kyverno runs it — a token present must verify with the policy's TSA chain (none given → the layer does not
count); a layer without a token is judged on its key alone. Tokens come from the local RFC 3161 signer."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from sigward.errors import VerificationFailure
from sigward.policy.models import CTLog
from sigward.verify.attestations import verify_attestations_with_key
from sigward.verify.certificates import policy_tsa_chain
from sigward.verify.cosign import ANNOTATION_RFC3161, SignatureLayer, TlogOptions, verify_signatures_with_key
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from tests.support.signing import attestation_layer, in_toto_statement, new_key, signed_layer
from tests.support.tsa import LocalTSA, make_tsa

DIGEST = "sha256:" + "a" * 64
WHEN = datetime(2025, 6, 1, tzinfo=UTC)
NO_TLOG = TlogOptions(required=False)


def _chain_pem(tsa: LocalTSA) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in tsa.chain)


def _with_token(annotations: dict[str, str], token: bytes) -> dict[str, str]:
    stamp = json.dumps({"SignedRFC3161TimeStamp": base64.b64encode(token).decode()})
    return {**annotations, ANNOTATION_RFC3161: stamp}


def _layer(token: Callable[[bytes], bytes] | None) -> SignatureLayer:
    """A key-signed ``.sig`` layer; ``token(signature)`` → the RFC 3161 response to attach (None: no token)."""
    signed = signed_layer(new_key("p256"), image_digest=DIGEST)
    annotations = dict(signed.annotations)
    if token is not None:
        signature = base64.b64decode(annotations["dev.cosignproject.cosign/signature"])
        annotations = _with_token(annotations, token(signature))
    return SignatureLayer(media_type=signed.media_type, payload=signed.payload, annotations=annotations)


def _verifier() -> PublicKeyVerifier:
    return PublicKeyVerifier(key=load_public_key_pem(new_key("p256").public_pem))


@dataclass(frozen=True)
class Case:
    name: str
    token: Callable[[bytes], bytes] | None
    chain: Callable[[], str]  # the policy's keys.ctlog.tsaCertChain
    error: str | None


CASES = [
    Case(
        "valid-token-policy-chain",
        lambda sig: make_tsa(0).stamp(sig, gen_time=WHEN),
        lambda: _chain_pem(make_tsa(0)),
        None,
    ),
    Case("no-token-with-chain", None, lambda: _chain_pem(make_tsa(0)), None),  # cosign: (nil, nil) → key alone
    Case("no-token-no-chain", None, lambda: "", None),
    Case(
        "token-from-another-tsa",
        lambda sig: make_tsa(1).stamp(sig, gen_time=WHEN),
        lambda: _chain_pem(make_tsa(0)),
        "unable to verify RFC3161 timestamp bundle",
    ),
    Case(
        "token-over-other-bytes",
        lambda sig: make_tsa(0).stamp(sig + b"x", gen_time=WHEN),
        lambda: _chain_pem(make_tsa(0)),
        "unable to verify RFC3161 timestamp bundle",
    ),
    Case(
        "token-but-no-chain",  # Kyverno's TestTSACertChain: the same image fails without tsaCertChain
        lambda sig: make_tsa(0).stamp(sig, gen_time=WHEN),
        lambda: "",
        "no TSA root certificate(s) provided",
    ),
    Case("token-not-a-response", lambda sig: b"\x30\x03\x02\x01\x00", lambda: _chain_pem(make_tsa(0)), "RFC3161"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_key_signed_layer_timestamps(case: Case) -> None:
    tsa = policy_tsa_chain(CTLog(tsa_cert_chain=case.chain()))

    def run() -> object:
        return verify_signatures_with_key(
            [_layer(case.token)], image_digest=DIGEST, verifier=_verifier(), annotations={}, tlog=NO_TLOG, tsa=tsa
        )

    if case.error is None:
        assert run()
    else:
        with pytest.raises(VerificationFailure, match=case.error.replace("(", r"\(").replace(")", r"\)")):
            run()


@pytest.mark.parametrize(
    ("over", "error"), [("envelope", None), ("other", "unable to verify RFC3161 timestamp bundle")]
)
def test_attestation_token_covers_the_envelope(over: str, error: str | None) -> None:
    """An ``.att`` layer's token is over the whole envelope (cosign: the payload when there is no base64
    signature): one over the envelope verifies, one over other bytes does not."""
    signed = attestation_layer(new_key("p256"), in_toto_statement(DIGEST, "https://example.test/p", {}))
    data = signed.payload if over == "envelope" else signed.payload + b" "
    annotations = _with_token(dict(signed.annotations), make_tsa(0).stamp(data, gen_time=WHEN))
    layer = SignatureLayer(media_type=signed.media_type, payload=signed.payload, annotations=annotations)
    tsa = policy_tsa_chain(CTLog(tsa_cert_chain=_chain_pem(make_tsa(0))))

    def run() -> object:
        return verify_attestations_with_key([layer], image_digest=DIGEST, verifier=_verifier(), tlog=NO_TLOG, tsa=tsa)

    if error is None:
        assert run()
    else:
        with pytest.raises(VerificationFailure, match=error):
            run()
