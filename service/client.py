"""A running `chipsweep serve`, as function calls (what `--server URL` commands use).

The bearer token comes from CHIPSWEEP_TOKEN when set. An HTTP error becomes a `ServerError` carrying the
server's JSON body ({error, field, value, allowed[, problems]}).
"""

from __future__ import annotations

import builtins
import json
import os
from typing import Any

import httpx


class ServerError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(error_text(body) if isinstance(body, dict) else str(body))


class ServerUnreachable(ServerError):
    """No answer from the server (refused, timed out, name unknown): status 0, the transport's reason."""

    def __init__(self, url: str, exc: Exception) -> None:
        super().__init__(0, {"error": f"cannot reach the server at {url}: {type(exc).__name__}: {exc}"})


def error_text(body: dict[str, Any]) -> str:
    """The server's own message (it names field, value and allowed), else the problems or the fields."""
    problems = body.get("problems")
    if problems:
        return "; ".join(problem_text(p) for p in problems)
    if body.get("error"):
        return str(body["error"])
    if "field" in body:
        return problem_text(body)
    return str(body)


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
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.url, exc) from None
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code >= 400:
            raise ServerError(r.status_code, body)
        return body

    def submit(self, text: bytes, reevaluate: bool = False) -> dict[str, Any]:
        params = {"reevaluate": "true"} if reevaluate else None
        return self._call("POST", "/sweeps", content=text, headers={"Content-Type": "application/yaml"}, params=params)

    def status(self, sweep_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sweeps/{sweep_id}")

    def list(self) -> list[dict[str, Any]]:
        return self._call("GET", "/sweeps")

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/sweeps/{sweep_id}")

    def resume(self, sweep_id: str) -> dict[str, Any]:
        return self._call("POST", f"/sweeps/{sweep_id}/resume")

    def history(self, sweep_id: str) -> builtins.list[dict[str, Any]]:
        return self._call("GET", f"/sweeps/{sweep_id}/history")
