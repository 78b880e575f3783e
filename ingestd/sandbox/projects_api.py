"""The Data API's projects: list, create (201 with `Location`) and show (404 when the
project does not exist: how a client learns that a project is gone).

A project object names its hashed id `hashedId` (Wistia's OpenAPI and its older pages) or
`hashed_id` (the `project_hashed_id_key` switch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingestd.sandbox.data_api import paging
from ingestd.sandbox.routing import HID, JSON, Answer, Request, error, route
from ingestd.sandbox.shapes import media_json, project_json
from ingestd.sandbox.store import Media, Project, as_list

# Projects#show answers up to this many of the project's medias a page (Wistia's page).
SHOW_PAGE = 500


def projects_list(request: Request) -> Answer:
    sandbox = request.sandbox
    counts = sandbox.store.media_counts()
    projects = list(sandbox.store.projects.values())
    if "hashed_ids" in request.params:
        wanted = set(as_list(request.params["hashed_ids"]))
        projects = [p for p in projects if p.hashed_id in wanted]
    projects.sort(key=_sort_key(request, counts), reverse=request.param("sort_direction") == "0")
    page, per_page = paging(request)
    chosen = projects[(page - 1) * per_page : page * per_page]
    return Answer(200, [project_json(p, counts.get(p.hashed_id, 0), sandbox) for p in chosen])


def _sort_key(request: Request, counts: dict[str, int]) -> Callable[[Project], Any]:
    by = request.param("sort_by")
    if by == "name":
        return lambda p: p.name
    if by in ("created", "updated"):
        return lambda p: p.created
    if by == "mediaCount":
        return lambda p: counts.get(p.hashed_id, 0)
    return lambda p: p.id


def project_create(request: Request) -> Answer:
    name = request.param("name")
    if not name:
        return error(request, 400, "name is required")
    sandbox = request.sandbox
    project = sandbox.store.create_project(name)
    location = f"{sandbox.api_url.rstrip('/')}/projects/{project.hashed_id}.json"
    return Answer(201, project_json(project, 0, sandbox), {"Location": location})


def project_show(request: Request) -> Answer:
    sandbox = request.sandbox
    project = sandbox.store.find_project(request.match["hid"])
    if project is None:
        return error(request, 404, f"Project with ID '{request.match['hid']}' not found.")
    medias = _medias_of(request, project)
    page = _show_page(request)
    shown = medias[(page - 1) * SHOW_PAGE : page * SHOW_PAGE]
    return Answer(
        200,
        {
            **project_json(project, len(medias), sandbox),
            "medias": [media_json(m, sandbox, "properties") for m in shown],
        },
    )


def _show_page(request: Request) -> int:
    text = request.param("page") or "1"
    return max(1, int(text)) if text.isdigit() else 1


def _medias_of(request: Request, project: Project) -> list[Media]:
    with request.sandbox.store.lock:
        return sorted(
            (m for m in request.sandbox.store.medias.values() if m.project is project),
            key=lambda m: m.id,
        )


ROUTES = [
    route("GET", rf"/v1/projects{JSON}", "projects_list", "projects", projects_list),
    route("POST", rf"/v1/projects{JSON}", "project_create", "projects", project_create),
    route("GET", rf"/v1/projects/{HID}{JSON}", "project_show", "projects", project_show),
]
