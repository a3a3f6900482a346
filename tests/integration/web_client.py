"""A signed-in client of the /web pages over plain HTTP, and the API as a separate process.

The session cookie is Secure, so a cookie jar would not send it over http://127.0.0.1: the client
carries the cookies itself, as a browser on the loopback interface does.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx

from services.platform.network import free_port
from services.platform.settings import Settings
from tests.processes import ChildProcess

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class WebClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.cookies: dict[str, str] = {}
        self.http = httpx.Client(base_url=url, timeout=120, follow_redirects=False)

    def _remember(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def _cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def get(self, path: str, **options: Any) -> httpx.Response:
        headers = {**self._cookie_header(), **options.pop("headers", {})}
        return self._remember(self.http.get(path, headers=headers, **options))

    def post(self, path: str, **options: Any) -> httpx.Response:
        headers = {**self._cookie_header(), **options.pop("headers", {})}
        return self._remember(self.http.post(path, headers=headers, **options))

    def csrf(self, path: str) -> str:
        page = self.get(path)
        match = _CSRF.search(page.text)
        assert match, f"no CSRF field on {path} ({page.status_code})"
        return match.group(1)

    def login(self, token: str) -> httpx.Response:
        nonce = self.csrf("/web/login")
        response = self.post("/web/login", data={"token": token, "csrf": nonce})
        assert response.status_code == 303, response.text[:500]
        return response

    def close(self) -> None:
        self.http.close()


def web_session_cookie(url: str, token: str) -> str:
    """Sign in with the API token `token` as a browser does; the web session cookie's value (the
    pages refuse an API token in the cookie)."""
    client = WebClient(url)
    try:
        client.login(token)
        return client.cookies["shk_session"]
    finally:
        client.close()


@contextmanager
def signed_in(url: str, token: str) -> Iterator[WebClient]:
    client = WebClient(url)
    client.login(token)
    try:
        yield client
    finally:
        client.close()


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


@contextmanager
def api_process(settings: Settings, log: Path, **environment: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`schoolhealth api` as its own process (so its memory can be measured); yields its URL."""
    port = free_port()
    api = ChildProcess(settings, log, ["api", "--port", str(port)], environment=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if not api.alive() or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start:{api.tail(3000)}")
            time.sleep(0.2)
        yield url, api.process
    finally:
        api.stop(timeout=20)
