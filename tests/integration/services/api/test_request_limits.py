"""Request limits on the real API process: bodies capped before parsing, authentication before
the body is read, NUL and undecodable input answered 400/422 (never 500), security headers."""

from __future__ import annotations

import contextlib
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from services.access.users import add_user
from services.platform.settings import Settings
from tests.integration.services.alerts.test_alerts_escalation import apply, candidates
from tests.integration.web_client import api_process, rss_kib

pytestmark = pytest.mark.integration

#: How much the API may grow while a stranger streams 50 MB of JSON at it (before: +135 MB).
RSS_GROWTH_BOUND_MIB = 20


def _raw_post(url: str, path: str, headers: dict[str, str], body_chunks: int, *, chunked: bool) -> int:
    """POST up to `body_chunks` MiB, stopping as soon as the server answers; the status code."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
                *(f"{k}: {v}" for k, v in headers.items())]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_chunks * 1024 * 1024}")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = b'{"kind": "survey", "row": {"x": "' + b"a" * (1024 * 1024 - 40) + b'"}}'
        chunk = chunk[:1024 * 1024]
        conn.setblocking(False)
        answer = b""
        for _ in range(body_chunks):
            with contextlib.suppress(BlockingIOError):
                answer += conn.recv(4096)
            if answer:
                break
            payload = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
            try:
                conn.setblocking(True)
                conn.sendall(payload)
                conn.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
        conn.setblocking(True)
        deadline = time.monotonic() + 30
        while b"\r\n" not in answer and time.monotonic() < deadline:
            try:
                data = conn.recv(4096)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


def test_bodies_are_capped_and_authenticated_before_parsing(isolated: Settings, tmp_path: Path) -> None:
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    with api_process(isolated, tmp_path / "api.log") as (url, process):
        assert httpx.get(f"{url}/health").status_code == 200
        before = rss_kib(process.pid)
        # A stranger's 50 MB, declared: refused on its length; streamed: refused on its token.
        assert _raw_post(url, "/screenings", {"Authorization": "Bearer wrong"}, 50, chunked=False) == 413
        assert _raw_post(url, "/screenings", {"Authorization": "Bearer wrong"}, 50, chunked=True) == 401
        assert _raw_post(url, "/screenings", {}, 50, chunked=True) == 401
        # A signed-in user's oversized body: refused while it streams, never parsed.
        assert _raw_post(url, "/screenings", {"Authorization": f"Bearer {token}"}, 20, chunked=True) == 413
        assert _raw_post(url, "/web/doctor/screening", {"Cookie": "shk_session=wrong"}, 20, chunked=True) == 303
        growth = (rss_kib(process.pid, "VmHWM") - before) / 1024
        assert growth < RSS_GROWTH_BOUND_MIB, f"the API grew by {growth:.0f} MiB"
        ok = httpx.post(f"{url}/screenings", headers={"Authorization": f"Bearer {token}"},
                        json={"kind": "survey", "row": {"school_id": "SA01"}})
        assert ok.status_code == 422  # a small body of a known user reaches validation


def test_nul_and_undecodable_input_is_a_client_error(isolated: Settings, tmp_path: Path) -> None:
    token = add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    me = {"Authorization": f"Bearer {token}"}
    apply(isolated, candidates(1, [0] * 8 + [2]), datetime.now(UTC))
    with api_process(isolated, tmp_path / "api.log") as (url, _):
        [alert] = httpx.get(f"{url}/alerts", headers=me).json()
        base = f"{url}/alerts/{alert['alert_id']}"
        answers = [
            httpx.get(f"{url}/alerts?school_id=SA%0001", headers=me),
            httpx.get(f"{url}/alerts?school_id=%ff%fe", headers=me),
            httpx.post(f"{base}/notes", headers=me, json={"note": "spoke\u0000with"}),
            httpx.post(f"{base}/notes", headers={**me, "Content-Type": "application/json"},
                       content=b'{"note": "lone \\ud800 surrogate"}'),
            httpx.post(f"{base}/notes", headers={**me, "Content-Type": "application/json"},
                       content=b'{"note": "\xff"}'),
        ]
        assert [a.status_code for a in answers] == [400, 400, 422, 422, 400], [a.text for a in answers]
        assert all("Traceback" not in a.text for a in answers)
        assert httpx.post(f"{base}/notes", headers=me, json={"note": "fine"}).status_code == 200


def test_security_headers_on_every_page(isolated: Settings, tmp_path: Path) -> None:
    with api_process(isolated, tmp_path / "api.log") as (url, _):
        for path in ("/web/login", "/health", "/web/alerts", "/alerts", "/web/static/web.css", "/nowhere"):
            response = httpx.get(f"{url}{path}")
            assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), path
            assert response.headers.get("x-frame-options") == "DENY", path
            assert response.headers.get("x-content-type-options") == "nosniff", path
