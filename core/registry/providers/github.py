"""``github``: ``GITHUB_TOKEN`` (a PAT or the Actions token) for ``ghcr.io``, sent as Basic to its token realm."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sigward.registry.credentials import Credentials

ENV_TOKEN = "GITHUB_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_ACTOR = "GITHUB_ACTOR"
# ghcr.io checks the token, not the user name; go-containerregistry sends "unset" without GITHUB_ACTOR.
FALLBACK_USER = "unset"


class GithubProvider:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return "GithubProvider()"

    def get(self, host: str) -> Credentials | None:
        token = self._env.get(ENV_TOKEN, "").strip()
        if not token:
            return None
        user = self._env.get(ENV_ACTOR, "").strip() or FALLBACK_USER
        return Credentials(username=user, password=token)
