"""The one python-tuf fetcher sigward uses (its public ``FetcherInterface``), for the process-wide TUF root
(:mod:`sigward.verify.tuf`, an operator-configured mirror) and for repositories a policy names
(:mod:`sigward.verify.policy_tuf`, on the network guard's pool). Whole refresh within a deadline, checked per request
and between socket receives: python-tuf's own fetcher reads with ``stream(n)``, which blocks until n bytes have
arrived however slowly they come, so a mirror trickling one byte per second held a refresh far past its budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import urllib3
    from tuf.ngclient.fetcher import FetcherInterface

# python-tuf's default read size; read1 returns what one receive brings, at most this.
CHUNK_BYTES = 400_000
# Redirects an operator-configured mirror may send (a CDN in front of a bucket); a policy-named mirror gets none.
MAX_REDIRECTS = 3

#: Which pool manager serves a URL (the guarded one; or the environment's proxy when one applies).
Pools = Callable[[str], "urllib3.PoolManager"]


class EnvironmentPools:
    """Pool managers for an operator-configured mirror: the proxy the environment names for the URL (``HTTPS_PROXY``,
    ``NO_PROXY`` …, as python-tuf's own fetcher honours them), else a direct pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._managers: dict[str, urllib3.PoolManager] = {}

    def __call__(self, url: str) -> urllib3.PoolManager:
        import urllib3
        from requests.utils import get_environ_proxies

        scheme = url.split("://", 1)[0].lower()
        proxy = get_environ_proxies(url).get(scheme) or ""
        with self._lock:
            found = self._managers.get(proxy)
            if found is None:
                found = urllib3.ProxyManager(proxy) if proxy else urllib3.PoolManager()
                self._managers[proxy] = found
            return found


def budget_fetcher(
    deadline: float, pools: Pools, *, user_agent: str, socket_timeout: float, follow_redirects: bool
) -> FetcherInterface:
    """A fetcher whose every request and every receive checks ``deadline`` (``time.monotonic()``); anything but a
    200 (after at most :data:`MAX_REDIRECTS` redirects when ``follow_redirects``) is an error; identity encoding,
    so the bytes read are the bytes python-tuf checks against signed lengths."""
    import urllib3
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient.fetcher import FetcherInterface

    retries: urllib3.Retry | bool = (
        urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)
        if follow_redirects
        else False
    )

    def check() -> None:
        if time.monotonic() > deadline:
            raise tuf_errors.SlowRetrievalError("the TUF refresh ran out of its time budget")

    class BudgetFetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            check()
            try:
                response = pools(url).request(
                    "GET",
                    url,
                    preload_content=False,
                    redirect=follow_redirects,
                    retries=retries,
                    timeout=urllib3.Timeout(socket_timeout),
                    headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
                )
            except urllib3.exceptions.TimeoutError as exc:
                raise tuf_errors.SlowRetrievalError from exc
            except urllib3.exceptions.MaxRetryError as exc:
                if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                    raise tuf_errors.SlowRetrievalError from exc
                raise tuf_errors.DownloadError(f"{type(exc.reason).__name__} fetching {url}") from exc
            if response.status != 200:
                response.close()
                raise tuf_errors.DownloadHTTPError(f"HTTP status {response.status}", response.status)
            return self._chunks(response)

        def _chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
            try:
                while True:
                    check()
                    # read1: at most one receive, so a trickling mirror meets the deadline between receives.
                    chunk = response.read1(CHUNK_BYTES, decode_content=False)
                    if not chunk:
                        return
                    yield chunk
            except urllib3.exceptions.TimeoutError as exc:
                raise tuf_errors.SlowRetrievalError from exc
            finally:
                response.release_conn()

    return BudgetFetcher()
