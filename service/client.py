"""A running `chipsweep serve`, as function calls (what `--server URL` commands use).

The bearer token comes from CHIPSWEEP_TOKEN when set. An HTTP error becomes a `ServerError` carrying the
server's JSON body ({error, field, value, allowed[, problems]}).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx


class ServerError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(error_text(body) if isinstance(body, dict) else str(body))


def error_text(body: dict[str, Any]) -> str:
    problems = body.get("problems")
    if problems:
        return "; ".join(problem_text(p) for p in problems)
    if "field" in body:
        return problem_text(body)
    return str(body.get("error") or body)


def problem_text(p: dict[str, Any]) -> str:
    msg = f"{p.get('message')}; " if p.get("message") else ""
    return f"field '{p.get('field')}' = {json.dumps(p.get('value'))}: {msg}allowed: {p.get('allowed')}"


class Client:
    """The HTTP API of one server."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        headers = {}
        token = os.environ.get("CHIPSWEEP_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code >= 400:
            raise ServerError(r.status_code, body)
        return body

    def submit(self, text: bytes) -> dict[str, Any]:
        return self._call("POST", "/sweeps", content=text, headers={"Content-Type": "application/yaml"})

    def status(self, sweep_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sweeps/{sweep_id}")

    def list(self) -> list[dict[str, Any]]:
        return self._call("GET", "/sweeps")

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/sweeps/{sweep_id}")
