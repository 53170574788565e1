"""The ``sigward`` command line (see ../shared/CONTRACT.md for commands and exit codes).

Errors become exit codes here and only here: 0 pass / nothing matched, 1 a decided failure, 2 bad input or
configuration, 3 an infrastructure error that no failure outranked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from sigward import logs
from sigward.errors import BadRequestError, ConfigurationError, PolicyError, SigwardError, VerificationFailure
from sigward.reports import OutputFormat

if TYPE_CHECKING:
    from sigward.admission.selectors import SelectorRoute
    from sigward.admission.service import Decision as AdmissionDecision
    from sigward.deadline import Deadline
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.policy.loader import PolicySet
    from sigward.verify.engine import Verifier
    from sigward.verify.results import RuleVerdict

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INFRA = 3

# The CLI has no webhook timeout to respect; this bounds a whole `verify` run so a dead registry cannot hang CI.
DEFAULT_VERIFY_TIMEOUT_SECONDS = 120.0


def _policy_paths(args_paths: Sequence[str] | None) -> list[str]:
    from sigward.policy.loader import policy_paths_from_env

    if args_paths:
        return list(args_paths)
    paths = list(policy_paths_from_env())
    if not paths:
        raise ConfigurationError("no policy given: use --policy PATH or set SIGWARD_POLICY")
    return paths


def _print_problems(err: PolicyError, out: TextIO) -> None:
    for problem in err.problems:
        print(f"error: {problem}", file=out)


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.deadline import Deadline
    from sigward.verify.results import Verdict
    from sigward.wiring import build_services

    services = build_services(os.environ, policy_paths=tuple(_policy_paths(args.policy)), short_lived=True)
    policy_set = services.policies()
    for note in policy_set.notes:
        print(f"note: {note}", file=err)
    try:
        verifier = services.verifier()
        deadline = Deadline.after(args.timeout)
        results = verifier.verify_images(args.images, policy_set.policies, deadline=deadline)
        if policy_set.image_policies:
            results = _with_image_policies(results, args.images, policy_set.image_policies, verifier, deadline)
    finally:
        services.close()
    _write_report(_output_format(args), results, policy_set, out)
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return EXIT_FAIL
    if Verdict.ERROR in verdicts:
        return EXIT_INFRA
    return EXIT_OK


def _output_format(args: argparse.Namespace) -> str:
    """``--json`` is ``--output json``; asking for two different formats is an error, not a silent pick."""
    if args.json and args.output not in (None, "json"):
        raise BadRequestError(f"--json and --output {args.output} disagree: give one of them")
    return "json" if args.json else (args.output or "text")


def _write_report(fmt: str, results: Sequence[RuleVerdict], policy_set: PolicySet, out: TextIO) -> None:
    if fmt == "text":
        for r in results:
            digest = f" ({r.digest})" if r.digest else ""
            where = f" {r.policy}/{r.rule}:" if r.policy else ":"
            print(f"{r.verdict.value.upper():5} {r.image}{digest}{where} {r.message}", file=out)
        return
    doc: Mapping[str, object]
    if fmt == "sarif":
        from sigward.reports.sarif import render_sarif

        doc = render_sarif(results, policy_set.policies, policy_set.image_policies)
    elif fmt == "policyreport":
        from sigward.reports.policyreport import render_policy_report

        doc = render_policy_report(results, policy_set.policies, image_policies=policy_set.image_policies)
    else:
        doc = {"results": [r.as_json() for r in results]}
    json.dump(doc, out, indent=2)
    out.write("\n")


def _with_image_policies(
    results: list[RuleVerdict],
    images: Sequence[str],
    policies: Sequence[ImagePolicy],
    verifier: Verifier,
    deadline: Deadline,
) -> list[RuleVerdict]:
    """ClusterPolicy results plus each IVPOL's verdict for each image (as for a Pod in namespace default running
    it); an image's "no verifyImages rule matches" skip is dropped when an IVPOL selected it."""
    from sigward.verify.ivpol import DirectChecks, evaluate_image
    from sigward.verify.results import Verdict

    checks = DirectChecks(verifier)
    extra = {image: evaluate_image(policies, image, checks=checks, deadline=deadline) for image in images}
    kept = [r for r in results if not (extra.get(r.image) and not r.policy and r.verdict == Verdict.SKIP)]
    return kept + [r for image in images for r in extra[image]]


def cmd_check_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.cluster.references import unavailable
    from sigward.policy.ivpol.autogen import autogen_configs, describe
    from sigward.wiring import build_services

    status = EXIT_OK
    text_out = err if args.json else out  # with --json, stdout is the JSON document alone
    checked: list[dict[str, object]] = []  # --json: the ImageValidatingPolicies and their autogen configs
    for path in args.paths:
        services = build_services(os.environ, policy_paths=(path,), short_lived=True)
        cluster = services.cluster()
        try:
            policy_set = services.policies()
        except PolicyError as exc:
            _print_problems(exc, text_out)
            status = EXIT_BAD_INPUT
            continue
        missing = unavailable(policy_set, cluster)
        if missing:
            _print_problems(PolicyError(missing), text_out)
            status = EXIT_BAD_INPUT
            continue
        for note in policy_set.notes:
            print(f"note: {note}", file=text_out)
        for policy in policy_set.policies:
            rules = sum(1 for rule in policy.spec.rules if rule.verify_images)
            print(f"ok: {policy.source}: {policy.kind} {policy.name} ({rules} verifyImages rules)", file=text_out)
        for exemption in policy_set.exceptions:
            print(f"ok: {exemption.source}: PolicyException {exemption.key}", file=text_out)
        for entry in policy_set.global_context:
            print(f"ok: {entry.source}: GlobalContextEntry {entry.name}", file=text_out)
        for cel_exemption in policy_set.cel_exceptions:
            print(
                f"ok: {cel_exemption.source}: PolicyException {cel_exemption.key} (policies.kyverno.io)", file=text_out
            )
        for image_policy in policy_set.image_policies:
            configs = autogen_configs(image_policy)
            if args.json:
                checked.append(
                    {
                        "source": image_policy.source,
                        "kind": image_policy.kind,
                        "name": image_policy.key,
                        "validations": len(image_policy.validations),
                        "autogen": {c.name: [r.as_json() for r in c.resource_rules] for c in configs},
                    }
                )
                continue
            print(
                f"ok: {image_policy.source}: {image_policy.kind} {image_policy.key} "
                f"({len(image_policy.validations)} validations; {describe(configs)})",
                file=text_out,
            )
    if args.json:
        json.dump({"imageValidatingPolicies": checked}, out, indent=2)
        out.write("\n")
    return status


def cmd_review(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.admission.review import MAX_REVIEW_BYTES, parse_json_body, parse_review
    from sigward.wiring import build_services

    if args.file == "-":
        body = sys.stdin.buffer.read(MAX_REVIEW_BYTES + 1)
    else:
        try:
            with open(args.file, "rb") as fh:
                body = fh.read(MAX_REVIEW_BYTES + 1)
        except OSError as exc:
            raise BadRequestError(f"{args.file}: cannot read: {exc.strerror}") from None
    source = "<stdin>" if args.file == "-" else args.file
    try:
        request = parse_review(parse_json_body(body, what="AdmissionReview", max_bytes=MAX_REVIEW_BYTES))
    except BadRequestError as exc:
        raise BadRequestError(f"{source}: {exc}") from None
    # No verdict store: a one-off review neither reuses nor records verdicts.
    services = build_services(
        {**os.environ, "SIGWARD_STORE": "memory:"}, policy_paths=tuple(_policy_paths(args.policy)), short_lived=True
    )
    try:
        decision = services.admission().decide(request, mode="validate" if args.validate else "mutate")
    finally:
        services.close()
    if args.output in ("policyreport", "sarif"):
        _write_review_report(args.output, request.raw, decision, services.policies(), out)
        return EXIT_OK
    doc = decision.review(request.uid)
    json.dump(doc, out, indent=2)
    out.write("\n")
    return EXIT_OK


def _write_review_report(
    fmt: str, raw: Mapping[str, Any], decision: AdmissionDecision, policy_set: PolicySet, out: TextIO
) -> None:
    """``review --output policyreport|sarif``: the decision's ClusterPolicy and ImageValidatingPolicy results."""
    from dataclasses import replace

    from sigward.reports import outcome_verdicts

    verdicts = [replace(c.verdict, exceptions=c.exceptions) if c.exceptions else c.verdict for c in decision.checks]
    verdicts += outcome_verdicts(decision.image_policies, policy_set.image_policies)
    doc: Mapping[str, object]
    if fmt == "sarif":
        from sigward.reports.sarif import render_sarif

        doc = render_sarif(verdicts, policy_set.policies, policy_set.image_policies)
    else:
        from sigward.reports.policyreport import render_policy_report

        obj = raw.get("object") or raw.get("oldObject") or {}
        meta = obj.get("metadata") or {}
        scope = {"apiVersion": str(obj.get("apiVersion", "")), "kind": str(obj.get("kind", ""))}
        scope["name"] = str(meta.get("name") or raw.get("name") or "")
        namespace = str(meta.get("namespace") or raw.get("namespace") or "default")
        scope["namespace"] = namespace
        doc = render_policy_report(
            verdicts,
            policy_set.policies,
            image_policies=policy_set.image_policies,
            name=f"sigward-review-{scope['name']}"[:253],
            namespace=namespace,
            scope=scope,
            process="sigward review",
        )
    json.dump(doc, out, indent=2)
    out.write("\n")


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.policy.loader import POLICY_ENV
    from sigward.server import serve
    from sigward.wiring import process_services

    if args.policy:
        # the environment is what every serve process (forked workers included) reads its policies from
        os.environ[POLICY_ENV] = ":".join(args.policy)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise BadRequestError("--tls-cert and --tls-key go together: give both or neither")
    tls = None
    if args.tls_cert:
        from sigward.tlsreload import ReloadingTLS

        tls = ReloadingTLS(args.tls_cert, args.tls_key)  # a bad pair is a ConfigurationError: exit 2, nothing bound
    # Fail fast on a broken policy, before binding the port; the process's services keep them for its workers.
    loaded = process_services().policies()
    from sigward.push.findings import Notifier

    Notifier.from_env(os.environ)  # ... and on an unusable SIGWARD_FINDINGS_WEBHOOK (ConfigurationError, exit 2)
    from sigward import tracing

    tracing.check(os.environ)  # ... and on OTEL_* settings that cannot work
    print(
        f"sigward: serving on {'https' if tls else 'http'}://{args.host}:{args.port} "
        f"(policies: {', '.join([p.key for p in loaded.policies] + [p.key for p in loaded.image_policies]) or 'none'})",
        file=err,
    )
    serve(
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        ssl_context=tls.context if tls else None,
    )
    return EXIT_OK


def cmd_webhook_config(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.admission.webhooks import policy_webhook_settings, render_webhook_configurations

    failure_policy, timeout_seconds = args.failure_policy or "Fail", args.timeout_seconds or 10
    extra_rules: tuple[dict[str, object], ...] = ()
    routes: list[SelectorRoute] = []
    if args.policy:
        from sigward.admission.selectors import SELECTOR_WEBHOOKS_ENV, policy_routes
        from sigward.wiring import build_services

        loaded = build_services(os.environ, policy_paths=tuple(args.policy), short_lived=True).policies()
        routes = list(policy_routes(loaded.policies, loaded.image_policies).values())
        if args.failure_policy or args.timeout_seconds:  # explicit flags win on every webhook
            routes = [
                dataclasses.replace(
                    r,
                    failure_policy=args.failure_policy or r.failure_policy,
                    timeout_seconds=args.timeout_seconds or r.timeout_seconds,
                )
                for r in routes
            ]
        if routes:
            print(
                f"note: {len(routes)} namespaceSelector/objectSelector/matchConditions webhook(s) added; run sigward "
                f"with {SELECTOR_WEBHOOKS_ENV}=webhook so the plain path leaves those rules and policies to them",
                file=err,
            )
        wanted = policy_webhook_settings(loaded.policies, loaded.image_policies)
        extra_rules = wanted.extra_rules
        failure_policy = args.failure_policy or wanted.failure_policy
        timeout_seconds = args.timeout_seconds or wanted.timeout_seconds
        if failure_policy == "Ignore" and wanted.failure_policy == "Fail":
            print("note: --failure-policy Ignore overrides policies that ask for failurePolicy Fail", file=err)
    out.write(
        render_webhook_configurations(
            url=args.url,
            token=args.token or os.environ.get("SIGWARD_ADMISSION_TOKEN", ""),
            failure_policy=failure_policy,
            timeout_seconds=timeout_seconds,
            name=args.name,
            exclude_namespaces=args.exclude_namespace or None,
            extra_rules=extra_rules,
            routes=routes,
        )
    )
    return EXIT_OK


def cmd_sign(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.deadline import Deadline
    from sigward.registry import RegistryClient, RegistryConfig
    from sigward.sign import Signer, sign_image

    annotations: dict[str, str] = {}
    for item in args.annotation or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadRequestError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    if args.notation:
        return _sign_notation(args, annotations, out)
    if args.cert_chain:
        raise BadRequestError("--cert-chain is for Notation signatures: add --notation jws|cose")
    if args.tsa_url:
        raise BadRequestError("--tsa-url is for Notation signatures: add --notation jws|cose")
    signer = Signer(args.key)
    client = RegistryClient(RegistryConfig.from_env(), allow_push=True)
    try:
        result = sign_image(
            args.image,
            signer=signer,
            client=client,
            deadline=Deadline.after(args.timeout),
            annotations=annotations or None,
            repository=args.repository,
        )
    finally:
        client.close()
    if args.json:
        json.dump(result.__dict__, out, indent=2)
        out.write("\n")
    else:
        state = "signed" if result.added else "already signed"
        print(
            f"{state} {result.image}@{result.digest} with {result.key}: "
            f"{result.signature_repository}:{result.signature_tag}",
            file=out,
        )
    return EXIT_OK


def _sign_notation(args: argparse.Namespace, annotations: dict[str, str], out: TextIO) -> int:
    """``--notation jws|cose``: a Notary Project signature with a local key and its certificate chain."""
    from pathlib import Path

    from sigward.deadline import Deadline
    from sigward.policy.kms_uri import is_kms_uri
    from sigward.registry import RegistryClient, RegistryConfig
    from sigward.sign_notation import sign_image_notation

    if not args.cert_chain:
        raise BadRequestError("--notation needs --cert-chain PEM (the signing certificate first, then its CAs)")
    if is_kms_uri(args.key):
        raise BadRequestError("--notation signs with a local PEM key only (KMS keys sign cosign signatures)")
    client = RegistryClient(RegistryConfig.from_env(), allow_push=True)
    try:
        result = sign_image_notation(
            args.image,
            key_path=Path(args.key),
            chain_path=Path(args.cert_chain),
            envelope_format=args.notation,
            client=client,
            deadline=Deadline.after(args.timeout),
            annotations=annotations or None,
            repository=args.repository,
            environ=os.environ,
            tsa_url=args.tsa_url,
        )
    finally:
        client.close()
    if args.json:
        json.dump(result.__dict__, out, indent=2)
        out.write("\n")
    else:
        print(
            f"signed {result.image}@{result.digest} with a Notation {result.envelope} signature: "
            f"{result.signature_repository}@{result.signature_manifest}",
            file=out,
        )
    return EXIT_OK


def cmd_package(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.package import package
    from sigward.policy.loader import policy_paths_from_env
    from sigward.wiring import build_services

    policies = list(args.policy or policy_paths_from_env())
    capabilities = build_services(os.environ, policy_paths=tuple(policies), short_lived=True).capabilities()
    result = package(args.out, policies, capabilities=capabilities)
    for note in result.notes:
        print(f"note: {note}", file=err)
    if args.json:
        json.dump(result.as_json(), out, indent=2)
        out.write("\n")
    else:
        print(f"{result.sha256}  {result.path}", file=out)  # sha256sum's format: `sha256sum -c` checks it
    return EXIT_OK


def cmd_verdict(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import UTC, datetime

    from sigward.references import parse_image_reference
    from sigward.store import open_store

    ref = parse_image_reference(args.image)
    if not ref.digest:
        raise BadRequestError(f"{args.image}: give the image by digest (IMAGE@sha256:...)")
    store = open_store()
    try:
        verdicts = [v for v in store.for_digest(ref.digest) if v.repository == ref.repository]
    finally:
        store.close()
    if args.json:
        json.dump({"image": ref.reference, "verdicts": [v.as_json() for v in verdicts]}, out, indent=2)
        out.write("\n")
    elif not verdicts:
        print(f"no verdict stored for {ref.reference}", file=out)
    else:
        for v in verdicts:
            when = datetime.fromtimestamp(v.verified_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            print(
                f"{v.verdict.upper():8} {v.image or ref.reference} {v.policy}/{v.rule} at {when} ({v.source}): "
                f"{v.message}",
                file=out,
            )
    return EXIT_OK if verdicts else EXIT_FAIL


def _since_seconds(text: str | None) -> float | None:
    from sigward.policy.durations import duration_seconds, try_parse_duration

    if text is None:
        return None
    ns = try_parse_duration(text)
    if ns is None or ns <= 0:
        raise BadRequestError(f"--since {text!r}: expected a positive duration such as 24h or 90m")
    return duration_seconds(ns)


def cmd_reverify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sigward.wiring import build_services

    since = _since_seconds(args.since)
    services = build_services(os.environ, policy_paths=tuple(_policy_paths(args.policy)), short_lived=True)
    policy_set = services.policies()
    for note in policy_set.notes:
        print(f"note: {note}", file=err)
    try:
        report = services.reverify(since_seconds=since, dry_run=args.dry_run).run()
    finally:
        services.close()
    if args.json:
        json.dump(report.as_json(), out, indent=2)
        out.write("\n")
    else:
        if report.busy:
            print("another reverify run holds the lease; nothing done", file=out)
        for flip in report.flips:
            label = "WOULD FLIP" if report.dry_run else "FLIPPED"
            print(
                f"{label} {flip.image}@{flip.digest} {flip.policy}/{flip.rule}: {flip.before} -> {flip.after} "
                f"({flip.reason.name}): {flip.message}",
                file=out,
            )
        print(
            f"examined {report.examined}, verified {report.verified}, updated {report.updated}, "
            f"flipped {len(report.flips)}, errors {report.errors}"
            f"{', cycle complete' if report.cycle_complete else ''}"
            f"{' (dry run: nothing written)' if report.dry_run else ''}",
            file=err,
        )
    if report.flips:
        return EXIT_FAIL
    return EXIT_INFRA if report.errors else EXIT_OK


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the exit-code tables as written and shows every option's default (argparse's documented hook)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "%(default)" not in text and "default:" not in text:
            text += " (default: %(default)s)"
        return text


# One table per subcommand, shown by its --help (the contract: ../shared/CONTRACT.md).
_EXIT_CODES = {
    "verify": "0 all images pass (or no rule matched)\n1 an image failed verification\n"
    "2 bad input or configuration\n3 infrastructure error (registry/KMS unreachable) that no failure outranked",
    "check-policy": "0 every policy is valid\n2 a policy is invalid (each problem is printed with its YAML path)",
    "review": "0 a response AdmissionReview was printed (allowed or not)\n2 bad input (the file is named)",
    "serve": "0 stopped by SIGTERM/SIGINT\n2 bad configuration (policy, findings webhook, TLS files)",
    "verdict": "0 a verdict is stored\n1 none stored\n2 bad input",
    "sign": "0 signed (or already signed)\n2 bad input or configuration\n3 registry/KMS error",
    "webhook-config": "0 printed\n2 bad input",
    "package": "0 archive written\n2 bad input or configuration",
    "reverify": "0 nothing flipped to fail\n1 some verdict flipped\n2 bad input or configuration\n"
    "3 infrastructure error (store/registry/KMS unreachable)",
}
_TOP_EXIT_CODES = (
    "exit codes (details in each command's --help):\n  0 ok\n  1 a decided failure (verify, verdict, reverify)\n"
    "  2 bad input or configuration\n  3 infrastructure error (registry/KMS unreachable)"
)


def _sub(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, description: str = ""
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.{chr(10) * 2 + description if description else ''}",
        epilog="exit codes:\n" + "\n".join(f"  {line}" for line in _EXIT_CODES[name].splitlines()),
        formatter_class=_HelpFormatter,
    )


_POLICY_HELP = "policy file (multi-document YAML or JSON) or directory; repeatable (default: $SIGWARD_POLICY)"


def build_parser() -> argparse.ArgumentParser:
    from sigward import __version__

    parser = argparse.ArgumentParser(
        prog="sigward",
        description="Verify container image signatures against Kyverno verifyImages policies.",
        epilog=_TOP_EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sigward {__version__}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = _sub(
        sub,
        "verify",
        "verify images against every matching verifyImages rule",
        "One result per (image, rule) that matched; an image no rule matched is reported as skip.",
    )
    verify.add_argument("--policy", action="append", help=_POLICY_HELP)
    verify.add_argument("--json", action="store_true", help="print one JSON object with all results (= --output json)")
    verify.add_argument(
        "--output",
        "-o",
        choices=[f.value for f in OutputFormat],
        help="report format: text, json, sarif (SARIF 2.1.0), policyreport (wgpolicyk8s.io/v1alpha2) (default: text)",
    )
    verify.add_argument(
        "--timeout", type=float, default=DEFAULT_VERIFY_TIMEOUT_SECONDS, help="overall time budget in seconds"
    )
    verify.add_argument("images", nargs="+", metavar="IMAGE", help="image reference (tag or digest)")
    verify.set_defaults(handler=cmd_verify)

    check = _sub(sub, "check-policy", "load and validate policies, printing each problem with its YAML path")
    check.add_argument("paths", nargs="+", metavar="PATH", help="policy file or directory")
    check.add_argument(
        "--json", action="store_true", help="print the ImageValidatingPolicies and their autogen configs as JSON"
    )
    check.set_defaults(handler=cmd_check_policy)

    review = _sub(
        sub,
        "review",
        "decide one AdmissionReview (v1) offline and print the response AdmissionReview",
        "Contacts the registries the policies need, exactly as the admission webhook would.",
    )
    review.add_argument("--policy", action="append", help=_POLICY_HELP)
    review.add_argument("--validate", action="store_true", help="apply the validate checks instead of mutate")
    review.add_argument(
        "--output",
        choices=["review", "policyreport", "sarif"],
        default="review",
        help="the response AdmissionReview (default), or the decision's results as a PolicyReport or SARIF",
    )
    review.add_argument("file", metavar="FILE|-", help="the AdmissionReview JSON file, or - for stdin")
    review.set_defaults(handler=cmd_review)

    serve = _sub(
        sub,
        "serve",
        "serve every function target locally on one port",
        "Paths: POST /admission/mutate, /admission/validate, /push/pubsub, /push/webhook; GET /healthz, /metrics.",
    )
    serve.add_argument("--policy", action="append", help=_POLICY_HELP)
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="port ($PORT)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERS", "0")),
        help="processes ($WORKERS; 0 = one per core, one with SIGWARD_STORE=memory:)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("THREADS", "16")),
        help="admission threads per process ($THREADS)",
    )
    serve.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate chain (reloaded when it changes)"
    )
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key (with --tls-cert)")
    serve.set_defaults(handler=cmd_serve)

    verdict = _sub(sub, "verdict", "print the stored push-time verdict(s) for IMAGE@DIGEST")
    verdict.add_argument("image", metavar="IMAGE@DIGEST", help="the image by digest")
    verdict.add_argument("--json", action="store_true", help="print the verdicts as one JSON object")
    verdict.set_defaults(handler=cmd_verdict)

    reverify = _sub(
        sub,
        "reverify",
        "re-evaluate recorded verdicts against the current (or given) policies; report flips",
        "Each stored verdict is verified again; changes are recorded and flips emit findings.",
    )
    reverify.add_argument("--policy", action="append", help=_POLICY_HELP)
    reverify.add_argument("--since", help="only verdicts recorded within this duration (e.g. 24h)")
    reverify.add_argument("--dry-run", action="store_true", help="print what would flip; write and notify nothing")
    reverify.add_argument("--json", action="store_true", help="print the run's report as one JSON object")
    reverify.set_defaults(handler=cmd_reverify)

    sign = _sub(
        sub, "sign", "write a cosign-compatible .sig signature (KMS or local key), or a Notation signature (--notation)"
    )
    sign.add_argument(
        "--key", required=True, help="KMS URI (awskms://, gcpkms://, azurekms://, hashivault://) or PEM file"
    )
    sign.add_argument("--annotation", "-a", action="append", help="KEY=VALUE added to the signed payload (repeatable)")
    sign.add_argument("--repository", help="push the signature to this repository instead of the image's")
    sign.add_argument(
        "--notation",
        choices=("jws", "cose"),
        help="write a Notary Project signature (JWS or COSE envelope, OCI referrer) instead of a cosign .sig",
    )
    sign.add_argument("--cert-chain", help="with --notation: PEM file, the signing certificate first, then its CAs")
    sign.add_argument(
        "--tsa-url", help="with --notation: RFC 3161 timestamp authority URL; its token countersigns the signature"
    )
    sign.add_argument("--json", action="store_true", help="print the result as JSON")
    sign.add_argument("--timeout", type=float, default=60.0, help="overall time budget in seconds")
    sign.add_argument("image", metavar="IMAGE", help="image reference to sign (resolved to its digest)")
    sign.set_defaults(handler=cmd_sign)

    hooks = _sub(sub, "webhook-config", "print the Mutating/ValidatingWebhookConfiguration for a URL")
    hooks.add_argument("--url", required=True, help="the admission function's https URL")
    hooks.add_argument("--token", default="", help="admission token (default: $SIGWARD_ADMISSION_TOKEN)")
    hooks.add_argument(
        "--failure-policy",
        choices=["Fail", "Ignore"],
        default=None,
        help="what the API server does on no answer (default: from --policy, else Fail)",
    )
    hooks.add_argument(
        "--timeout-seconds",
        type=int,
        default=None,
        help="the webhooks' timeoutSeconds (default: from --policy, else 10)",
    )
    hooks.add_argument(
        "--policy",
        action="append",
        help="policies whose failurePolicy, webhook timeout and ImageValidatingPolicy matchConstraints shape the "
        "webhooks (repeatable)",
    )
    hooks.add_argument("--name", default="sigward", help="name of the configurations")
    hooks.add_argument("--exclude-namespace", action="append", help="namespace never sent to the webhook (repeatable)")
    hooks.set_defaults(handler=cmd_webhook_config)

    pkg = _sub(
        sub, "package", "build the reproducible Cloud Run functions source zip (sigward-<sha12>.zip) with policies"
    )
    pkg.add_argument("--out", default="dist", help="directory for the archive")
    pkg.add_argument("--policy", action="append", help="policy file or directory to bundle (default: $SIGWARD_POLICY)")
    pkg.add_argument("--json", action="store_true", help="print path, sha256, policies and pins as JSON")
    pkg.set_defaults(handler=cmd_package)
    return parser


# The commands that verify (serve configures tracing per worker process itself).
_TRACED_COMMANDS = frozenset({"verify", "review", "reverify"})


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return EXIT_BAD_INPUT if exc.code not in (0, None) else EXIT_OK
    previous = logs.current_stream()
    if args.command != "serve":
        # stdout is the command's answer (--json results, a review's AdmissionReview); log lines go to stderr
        logs.set_stream(err)
    traced = False
    try:
        if args.command in _TRACED_COMMANDS:
            from sigward import tracing

            traced = tracing.configure_from_env(os.environ)  # OTEL_* set: spans for this run, flushed at exit
        code: int = args.handler(args, out, err)
        return code
    except PolicyError as exc:
        _print_problems(exc, err)
        return EXIT_BAD_INPUT
    except (BadRequestError, ConfigurationError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except VerificationFailure as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAIL
    except SigwardError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INFRA
    except KeyboardInterrupt:
        return 130
    finally:
        if traced:
            from sigward import tracing

            tracing.shutdown()
        logs.set_stream(previous)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(run())


if __name__ == "__main__":
    main()
