"""One short phrase for a failed HTTP request, instead of a `requests` exception's repr.

`HTTPConnectionPool(host=..., port=1): Max retries exceeded ... [Errno 111] Connection refused`
becomes `cannot connect to 127.0.0.1:1: connection refused`; errors name the URL they came from.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_CAUSES = (
    ("connection refused", "connection refused"),
    ("name or service not known", "host name does not resolve"),
    ("temporary failure in name resolution", "host name does not resolve"),
    ("nodename nor servname", "host name does not resolve"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network is unreachable"),
    ("certificate verify failed", "TLS certificate verification failed"),
    ("connection reset", "connection reset by the server"),
    ("remotedisconnected", "the server closed the connection"),
    ("connection aborted", "the server closed the connection"),
)


def describe(e: BaseException, url: str = "") -> str:
    """`cannot connect to HOST: <cause>` for connection failures; a short phrase otherwise."""
    import requests  # only ever called after a request failed: requests is loaded already

    text = str(e).lower()
    host = urlsplit(url).netloc if url else ""
    where = f" to {host}" if host else ""
    if isinstance(e, requests.Timeout):
        return f"no answer{where} (timed out)"
    for needle, phrase in _CAUSES:
        if needle in text:
            if isinstance(e, requests.exceptions.SSLError) or "certificate" in needle:
                return f"{phrase}{where}"
            return f"cannot connect{where}: {phrase}"
    if isinstance(e, requests.ConnectionError):
        return f"cannot connect{where}"
    short = str(e)
    return f"{type(e).__name__}: {short if len(short) < 200 else short[:200] + '…'}"
