"""ImageValidatingPolicies in admission: their decision merged into the ClusterPolicy one — a Deny from either
denies, digest pins are merged per JSON pointer and two different pins of one field deny (fail closed), Warn becomes
an AdmissionResponse warning, Audit is logged only. Their checks are cached by :mod:`sigward.admission.ivpol_cache`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigward import logs
from sigward.verify.ivpol import Decision as ImagePolicyDecision


@dataclass(frozen=True)
class Merged:
    """The request's answer over both policy forms."""

    allowed: bool
    message: str
    patch: tuple[Mapping[str, Any], ...]
    warnings: tuple[str, ...]


def merge(
    *,
    allowed: bool,
    message: str,
    patch: Sequence[Mapping[str, Any]],
    warnings: Sequence[str],
    image: ImagePolicyDecision,
    mutate: bool,
    uid: str = "",
) -> Merged:
    """ClusterPolicy answer (``allowed`` … ``warnings``) merged with the IVPOL ``image`` decision. A Deny from either
    denies; pins are merged per pointer (the same value once; two different values deny); Warn → warnings; Audit is
    logged only."""
    for text in image.audits:
        logs.emit("WARNING", "ImageValidatingPolicy audit failure", uid=uid, result=text)
    messages = [m for m in (message if not allowed else "", image.message if not image.allowed else "") if m]
    all_warnings = tuple(dict.fromkeys((*warnings, *image.warnings)))
    if messages:
        return Merged(False, "\n".join(messages), (), all_warnings)
    merged: dict[str, Mapping[str, Any]] = {}
    for op in (*patch, *(image.patches if mutate else ())):
        path = str(op.get("path", ""))
        earlier = merged.get(path)
        if earlier is None:
            merged[path] = op
        elif earlier.get("value") != op.get("value"):
            return Merged(
                False,
                f"conflicting digest pins for {path}: {earlier.get('value')} and {op.get('value')} "
                "(the tag moved while the request was decided)",
                (),
                all_warnings,
            )
    return Merged(True, "", tuple(merged.values()), all_warnings)
