"""`/_sandbox/...`: controls for tests in other processes (never recorded, never limited).

GET  /_sandbox/records   every request received (no token)
GET  /_sandbox/faults    the fault and behaviour switches
POST /_sandbox/faults    change some (JSON object); all or none applied
GET  /_sandbox/medias    every media, flat: sha256, size, project, tags, captions...
POST /_sandbox/medias    add medias "uploaded by hand" (one object or a list; all or none)
GET  /_sandbox/projects  every project
POST /_sandbox/projects  make one: {"name": ...}
GET  /_sandbox/swaps     every swap's background job, with its medias
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ingestd.sandbox.handmade import admin_json, checked, create, spec_from_json
from ingestd.sandbox.routing import Answer

if TYPE_CHECKING:
    from ingestd.sandbox.server import Sandbox


def serve(sandbox: Sandbox, method: str, path: str, body: bytes) -> Answer:
    handler = _CONTROLS.get((method, path.rstrip("/")))
    if handler is None:
        return Answer(404, {"error": "unknown sandbox control"})
    try:
        payload = json.loads(body) if body else None
        return handler(sandbox, payload)
    except (ValueError, TypeError) as exc:
        return Answer(400, {"error": str(exc)})


def _records(sandbox: Sandbox, payload: Any) -> Answer:
    return Answer(200, [r.to_json() for r in sandbox.records])


def _faults(sandbox: Sandbox, payload: Any) -> Answer:
    return Answer(200, sandbox.faults.as_dict())


def _change_faults(sandbox: Sandbox, payload: Any) -> Answer:
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object of switches")
    sandbox.faults.update(**payload)
    return Answer(200, sandbox.faults.as_dict())


def _medias(sandbox: Sandbox, payload: Any) -> Answer:
    sandbox.store.settle()
    with sandbox.store.lock:
        medias = list(sandbox.store.medias.values())
    return Answer(200, [admin_json(m, sandbox) for m in medias])


def _add_medias(sandbox: Sandbox, payload: Any) -> Answer:
    many = isinstance(payload, list)
    specs = [spec_from_json(v) for v in (payload if many else [payload])]
    with sandbox.store.lock:  # all checked before any is added
        ready = [checked(sandbox, spec) for spec in specs]
        made = [create(sandbox, spec, project) for spec, project in ready]
    shown = [admin_json(m, sandbox) for m in made]
    return Answer(201, shown if many else shown[0])


def _projects(sandbox: Sandbox, payload: Any) -> Answer:
    counts = sandbox.store.media_counts()
    return Answer(
        200,
        [
            {"hashed_id": p.hashed_id, "id": p.id, "name": p.name, "medias": counts.get(k, 0)}
            for k, p in list(sandbox.store.projects.items())
        ],
    )


def _add_project(sandbox: Sandbox, payload: Any) -> Answer:
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        raise ValueError('expected {"name": "..."}')
    project = sandbox.store.create_project(payload["name"])
    return Answer(201, {"hashed_id": project.hashed_id, "id": project.id, "name": project.name})


def _swaps(sandbox: Sandbox, payload: Any) -> Answer:
    sandbox.store.settle()
    now = time.time()
    return Answer(200, [job.admin_json(now) for job in sandbox.swaps])


_CONTROLS = {
    ("GET", "/_sandbox/records"): _records,
    ("GET", "/_sandbox/faults"): _faults,
    ("POST", "/_sandbox/faults"): _change_faults,
    ("GET", "/_sandbox/medias"): _medias,
    ("POST", "/_sandbox/medias"): _add_medias,
    ("GET", "/_sandbox/projects"): _projects,
    ("POST", "/_sandbox/projects"): _add_project,
    ("GET", "/_sandbox/swaps"): _swaps,
}
