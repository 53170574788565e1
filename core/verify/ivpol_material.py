"""ImageValidatingPolicy attestor material from CEL expressions (Kyverno's ``CompiledAttestor.Evaluate``):
``cosign.key.expression``, ``cosign.certificate.cert/certChain.expression``, ``notary.certs/tsaCerts.expression``
and ``keyless.identities[i].subjectExpression`` (the CRD: its value is matched as a regexp against the
certificate's SAN). Evaluated per check, typically reading a ConfigMap with ``resource.Get``; the values are
shape-checked and put into the attestor set the engine verifies, and their fingerprint goes into the check's
name, so a verdict reused under an old ConfigMap value can never answer for the new one.

A lookup that fails (missing ConfigMap, cluster down) raises what the lookup raised (an infrastructure error); a
value of the wrong shape (not a string, empty, not PEM, not a regexp) is a :class:`CelError` naming the YAML path.
Both end in the policy's failurePolicy, never in an allow by omission."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sigward.patterns import PatternError, compile_re2
from sigward.policy.ivpol.cel import CelError
from sigward.policy.models import AttestorSet, CTLog

if TYPE_CHECKING:
    from sigward.policy.ivpol.load import CompiledAttestor

# A value read from a ConfigMap is attacker-reachable (whoever can edit it): Kyverno caps the trusted root at 1 MiB;
# keys and certificate chains are far smaller (a chain of 12 certificates is ~20 KB).
MAX_MATERIAL_CHARS = 256 * 1024
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
_PEM_BEGIN = "-----BEGIN "
_PEM_PUBLIC_KEY = "PUBLIC KEY-----"
# Hex characters of the material fingerprint in a check's name (128 bits: no collision by chance).
FINGERPRINT_CHARS = 32


def _shape_problem(slot: str, text: str) -> str | None:
    """Why ``text`` cannot be ``slot``'s material, or None."""
    if not text.strip():
        return "evaluated to an empty string"
    if len(text) > MAX_MATERIAL_CHARS:
        return f"value longer than {MAX_MATERIAL_CHARS} characters"
    if slot == "key" and not (_PEM_BEGIN in text and _PEM_PUBLIC_KEY in text):
        return "must evaluate to a PEM public key (-----BEGIN PUBLIC KEY-----)"
    if slot in ("cert", "certChain", "notary.certs", "notary.tsaCerts") and _PEM_CERTIFICATE not in text:
        return "must evaluate to PEM certificates (-----BEGIN CERTIFICATE-----)"
    return None


def evaluate_material(compiled: CompiledAttestor, data: Mapping[str, Any]) -> dict[str, str]:
    """Each material expression of ``compiled`` evaluated against ``data``, by slot, shape-checked."""
    out: dict[str, str] = {}
    for slot, program in compiled.material:
        value = program.evaluate(data)
        if not isinstance(value, str):
            raise CelError(f"{program.path}: must evaluate to a string, not {type(value).__name__}")
        problem = _shape_problem(slot, value)
        if problem is None and slot.startswith("subject:"):
            try:
                compile_re2(value, path=program.path)
            except PatternError as exc:
                problem = f"not a regular expression: {str(exc).removeprefix(program.path + ': ')}"
        if problem is not None:
            raise CelError(f"{program.path}: {problem}")
        out[slot] = value
    return out


def fingerprint(values: Mapping[str, str]) -> str:
    """A short, stable digest of resolved material (part of a check's reuse key); "" for none."""
    if not values:
        return ""
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_CHARS]


def with_material(attestors: AttestorSet, values: Mapping[str, str]) -> AttestorSet:
    """``attestors`` (the loader's one-attestor set, material left empty) with ``values`` put in place."""
    if not values:
        return attestors
    entries = list(attestors.entries)
    for i, given in enumerate(attestors.entries):
        entry = given
        if entry.keys is not None and "key" in values:
            entry = entry.model_copy(update={"keys": entry.keys.model_copy(update={"public_keys": values["key"]})})
        if entry.certificates is not None:
            update: dict[str, Any] = {}
            if "cert" in values:
                update["cert"] = values["cert"]
            if "certChain" in values:
                update["cert_chain"] = values["certChain"]
            if "notary.certs" in values:
                update["cert"] = values["notary.certs"]
            if "notary.tsaCerts" in values:
                update["ctlog"] = CTLog(tsa_cert_chain=values["notary.tsaCerts"])
            if update:
                entry = entry.model_copy(update={"certificates": entry.certificates.model_copy(update=update)})
        subject = values.get(f"subject:{i}")
        if entry.keyless is not None and subject is not None:
            entry = entry.model_copy(update={"keyless": entry.keyless.model_copy(update={"subject_reg_exp": subject})})
        entries[i] = entry
    return attestors.model_copy(update={"entries": tuple(entries)})
