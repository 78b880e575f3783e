"""The sandbox answers as Wistia's API does today (../shared/wistia-api/current-api-facts.md):
each shape, fault and switch checked over real loopback HTTP with httpx."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingestd.sandbox import Faults, Sandbox
from ingestd.sandbox.faults import STORAGE_LIMIT_ERROR, VIDEO_LIMIT_ERROR
from tests.conftest import wait_until

TOKEN = "tok-sandbox-api-0123456789abcdef"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MP3 = b"ID3" + b"\x00" * 64


@pytest.fixture
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(token=TOKEN, processing_seconds=0.3).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(box: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=box.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


def upload(api: httpx.Client, filename: str, data: bytes, **fields: str) -> httpx.Response:
    return api.post("/", data=fields, files={"file": (filename, data, "application/octet-stream")})


def uploaded(api: httpx.Client, filename: str, data: bytes, **fields: str) -> dict[str, Any]:
    answer = upload(api, filename, data, **fields)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ready(api: httpx.Client, hashed_id: str) -> dict[str, Any]:
    def shown() -> dict[str, Any] | None:
        media = api.get(f"/v1/medias/{hashed_id}.json").json()
        return media if media["status"] == "ready" else None

    return wait_until(shown, timeout=10, what=f"{hashed_id} ready")


def original_size(media: dict[str, Any]) -> int:
    (asset,) = [a for a in media["assets"] if a["type"] == "OriginalFile"]
    return int(asset["fileSize"])


# --- shapes ---------------------------------------------------------------------------------


def test_upload_answer_is_the_media_without_status_or_project(api: httpx.Client) -> None:
    media = uploaded(api, "clip.mp4", b"x" * 1000, name="Clip")
    assert set(media) == {
        "id",
        "name",
        "type",
        "created",
        "updated",
        "duration",
        "hashed_id",
        "progress",
        "thumbnail",
        "description",
        "account_id",
        "archived",
    }
    assert media["name"] == "Clip" and media["type"] == "Video"
    assert media["archived"] is False


def test_media_show_and_list_carry_status_assets_project_and_tags(
    box: Sandbox, api: httpx.Client
) -> None:
    project = box.store.create_project("Launch")
    hashed = uploaded(api, "clip.mp4", b"y" * 1234, project_id=project.hashed_id)["hashed_id"]
    shown = api.get(f"/v1/medias/{hashed}.json").json()
    assert shown["status"] in ("queued", "processing", "ready", "failed")
    assert original_size(shown) == 1234
    assert set(shown["assets"][0]) == {"url", "width", "height", "fileSize", "contentType", "type"}
    assert shown["project"] == {"id": project.id, "name": "Launch", "hashed_id": project.hashed_id}
    assert shown["tags"] == [] and shown["archived"] is False
    listed = api.get("/v1/medias.json").json()
    assert [m["hashed_id"] for m in listed] == [hashed]
    assert original_size(listed[0]) == 1234 and "tags" in listed[0]

    box.faults.update(media_project_hashed_id_key="hashedId")
    again = api.get(f"/v1/medias/{hashed}").json()  # the SDK's path, without .json
    assert again["project"] == {"id": project.id, "name": "Launch", "hashedId": project.hashed_id}


def test_account_shows_media_count_images_included_and_the_video_limit(
    box: Sandbox, api: httpx.Client
) -> None:
    uploaded(api, "clip.mp4", b"v" * 10)
    uploaded(api, "thumb.png", PNG)
    account = api.get("/v1/account.json").json()
    assert {"id", "name", "url", "mediaCount", "videoLimit", "projectCount"} <= set(account)
    assert account["mediaCount"] == 2
    assert account["videoLimit"] is None
    assert account["projectCount"] == len(box.store.projects)
    box.faults.update(video_limit=5)
    assert api.get("/v1/account.json").json()["videoLimit"] == 5
    box.faults.update(video_limit=None, no_video_limit="absent")
    assert "videoLimit" not in api.get("/v1/account.json").json()
    box.faults.update(no_video_limit="zero")
    assert api.get("/v1/account.json").json()["videoLimit"] == 0


def test_data_api_401_is_json_and_upload_api_401_is_html(box: Sandbox) -> None:
    wrong = {"Authorization": "Bearer not-the-token"}
    data_api = httpx.get(box.api_url + "medias.json", headers=wrong)
    assert data_api.status_code == 401
    assert data_api.headers["content-type"].startswith("application/json")
    assert data_api.json()["code"] == "unauthorized_credentials"
    assert data_api.json()["error"]
    upload_api = httpx.post(box.upload_url, headers=wrong, files={"file": ("a.mp4", b"a")})
    assert upload_api.status_code == 401
    assert upload_api.headers["content-type"].startswith("text/html")
    modern = httpx.get(box.modern_url + "background_job_status/1", headers=wrong)
    assert modern.status_code == 401 and modern.json()["code"] == "unauthorized_credentials"


def test_rate_limit_answers_429_with_retry_after_seconds_and_text(
    box: Sandbox, api: httpx.Client
) -> None:
    box.faults.update(rate_limit_per_minute=2, rate_window_seconds=30)
    statuses = [api.get("/v1/account.json") for _ in range(3)]
    assert [a.status_code for a in statuses] == [200, 200, 429]
    refused = statuses[-1]
    assert refused.text == "Rate limit exceeded"
    assert refused.headers["content-type"].startswith("text/plain")
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert not any(k.lower().startswith("x-ratelimit") for k in refused.headers)
    box.faults.update(rate_limit_body="json")
    assert api.get("/v1/account.json").json() == {"error": "Rate limit exceeded"}


# --- limits ---------------------------------------------------------------------------------


def test_images_count_toward_the_video_limit(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(video_limit=2)
    uploaded(api, "clip.mp4", b"v" * 10)
    uploaded(api, "thumb.png", PNG)
    refused = upload(api, "second.png", PNG)
    assert refused.status_code == 400
    assert refused.json() == {"error": VIDEO_LIMIT_ERROR}
    assert api.get("/v1/account.json").json()["mediaCount"] == 2
    assert len(box.store.medias) == 2


def test_storage_limit_refuses_with_a_400_about_storage(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(storage_limit=100)
    uploaded(api, "a.mp4", b"a" * 60)
    refused = upload(api, "b.mp4", b"b" * 60)
    assert refused.status_code == 400
    assert refused.json() == {"error": STORAGE_LIMIT_ERROR}
    assert "storage limit" in STORAGE_LIMIT_ERROR
    box.faults.update(error_body="code_detail", storage_limit_message="Out of storage space.")
    again = upload(api, "b.mp4", b"b" * 60)
    assert again.json() == {"code": "upload_failed", "detail": "Out of storage space."}
    account = api.get("/v1/account.json").json()
    assert not [key for key in account if "storage" in key.lower()]  # it shows nowhere


def test_error_bodies_in_each_shape(box: Sandbox, api: httpx.Client) -> None:
    hashed = uploaded(api, "clip.mp4", b"c" * 10)["hashed_id"]
    captions = f"/v1/medias/{hashed}/captions.json"
    api.post(captions, data={"caption_file": "1\n", "language": "eng"})

    def refusal() -> Any:
        answer = api.post(captions, data={"caption_file": "2\n", "language": "eng"})
        assert answer.status_code == 400
        return answer.json()

    assert refusal() == {"error": "Captions already exist for this video."}
    box.faults.update(error_body="code_detail")
    assert refusal() == {"code": "bad_request", "detail": "Captions already exist for this video."}
    box.faults.update(error_body="nested")
    assert refusal() == {
        "error": {"code": "bad_request", "detail": "Captions already exist for this video."}
    }


# --- tags, customizations, captions ---------------------------------------------------------


def test_tags_replace_on_update_and_filter_lists(api: httpx.Client) -> None:
    a = uploaded(api, "a.mp4", b"a")["hashed_id"]
    b = uploaded(api, "b.mp4", b"b")["hashed_id"]
    first = api.put(f"/v1/medias/{a}.json", json={"tags": ["launch", "2026"]})
    assert first.status_code == 200
    assert first.json()["tags"] == [{"name": "launch"}, {"name": "2026"}]
    assert "project" not in first.json() and "assets" not in first.json()
    replaced = api.put(f"/v1/medias/{a}.json", data={"tags[]": ["launch", "final"]})
    assert replaced.json()["tags"] == [{"name": "launch"}, {"name": "final"}]  # 2026 gone
    api.put(f"/v1/medias/{b}.json", content="tags=launch&tags=ignored", headers=_FORM)
    shown_b = api.get(f"/v1/medias/{b}.json").json()
    assert shown_b["tags"] == [{"name": "ignored"}]  # a plain key twice: Rails keeps the last
    listed = api.get("/v1/medias.json", params={"tags[]": ["launch", "final"]}).json()
    assert [m["hashed_id"] for m in listed] == [a]
    cleared = api.put(f"/v1/medias/{a}.json", json={"tags": []})
    assert cleared.json()["tags"] == []


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_customizations_post_replaces_put_merges_and_null_deletes(
    box: Sandbox, api: httpx.Client
) -> None:
    hashed = uploaded(api, "clip.mp4", b"c")["hashed_id"]
    url = f"/v1/medias/{hashed}/customizations.json"
    made = api.post(url, json={"playerColor": "ff0000", "autoPlay": True, "plugin": {"a": {}}})
    assert made.status_code == 201
    assert made.json() == {"playerColor": "ff0000", "autoPlay": "true", "plugin": {"a": {}}}
    merged = api.put(url, json={"autoPlay": None, "volume": 0.5, "plugin": {"b": {"on": True}}})
    assert merged.status_code == 200
    assert merged.json() == {
        "playerColor": "ff0000",
        "volume": "0.5",
        "plugin": {"a": {}, "b": {"on": "true"}},
    }
    replaced = api.post(url, json={"smallPlayButton": False})
    assert replaced.json() == {"smallPlayButton": "false"}  # everything else gone
    assert api.get(url).json() == {"smallPlayButton": "false"}
    box.faults.update(customizations_merge="shallow")
    api.put(url, json={"plugin": {"a": {"x": 1}}})
    api.put(url, json={"plugin": {"b": {"y": 2}}})
    assert api.get(url).json()["plugin"] == {"b": {"y": "2"}}


def test_captions_create_refuses_a_second_put_replaces_or_404s(api: httpx.Client) -> None:
    hashed = uploaded(api, "clip.mp4", b"c")["hashed_id"]
    base = f"/v1/medias/{hashed}/captions"
    created = api.post(
        base + ".json", files={"caption_file": ("c.srt", b"1\nfirst\n")}, data={"language": "eng"}
    )
    assert created.status_code == 200
    again = api.post(base + ".json", data={"caption_file": "x", "language": "eng"})
    assert again.status_code == 400 and "already exist" in again.json()["error"]
    missing = api.put(base + "/fre.json", data={"caption_file": "bonjour"})
    assert missing.status_code == 404
    replaced = api.put(base + "/eng.json", data={"caption_file": "1\nsecond\n"})
    assert replaced.status_code == 200
    (listed,) = api.get(base + ".json").json()
    assert set(listed) == {"language", "text", "english_name", "native_name", "is_draft", "id"}
    assert listed["language"] == "eng" and listed["text"] == "1\nsecond\n"
    assert listed["english_name"] == "English" and listed["is_draft"] is False


# --- lists and projects ---------------------------------------------------------------------


def test_media_list_filters_sorting_and_pages(box: Sandbox, api: httpx.Client) -> None:
    project = box.store.create_project("Big")
    for n in range(105):
        box.add_media(f"clip-{n:03d}.mp4", size=n + 1, project=project.hashed_id)
    image = box.add_media("still.png", size=5, archived=True)
    page = api.get("/v1/medias.json", params={"per_page": 500}).json()
    assert isinstance(page, list) and len(page) == 100
    last = api.get("/v1/medias.json", params={"page": 2}).json()
    assert len(last) == 6  # a short page is the last one
    ascending = api.get("/v1/medias.json", params={"sort_by": "name"}).json()
    descending = api.get("/v1/medias.json", params={"sort_by": "name", "sort_direction": 0}).json()
    assert ascending[0]["name"] == "clip-000.mp4"
    assert descending[0]["name"] == "still.png"
    named = api.get("/v1/medias.json", params={"name": "clip-007.mp4"}).json()
    assert [original_size(m) for m in named] == [8]
    assert api.get("/v1/medias.json", params={"name": "clip-007"}).json() == []
    images = api.get("/v1/medias.json", params={"type": "Image"}).json()
    assert [m["hashed_id"] for m in images] == [image.hashed_id]
    archived = api.get("/v1/medias.json", params={"archived": "true"}).json()
    assert [m["archived"] for m in archived] == [True]
    in_project = api.get(
        "/v1/medias.json", params={"project_id": project.hashed_id, "per_page": 100}
    ).json()
    assert len(in_project) == 100
    chosen = [m.hashed_id for m in list(box.store.medias.values())[:3]]
    by_ids = api.get("/v1/medias.json", params={"hashed_ids[]": chosen}).json()
    assert sorted(m["hashed_id"] for m in by_ids) == sorted(chosen)


@pytest.mark.parametrize("key", ["hashedId", "hashed_id"])
def test_projects_name_their_hashed_id_as_switched(
    box: Sandbox, api: httpx.Client, key: str
) -> None:
    box.faults.update(project_hashed_id_key=key)
    made = api.post("/v1/projects.json", data={"name": "Customers"})
    assert made.status_code == 201
    hashed = made.json()[key]
    assert made.headers["Location"].endswith(f"/projects/{hashed}.json")
    other = "hashed_id" if key == "hashedId" else "hashedId"
    listed = api.get("/v1/projects.json").json()
    assert [p[key] for p in listed] == [hashed] and other not in listed[0]
    shown = api.get(f"/v1/projects/{hashed}.json").json()
    assert shown[key] == hashed and shown["medias"] == []


def test_project_show_answers_404_for_a_project_that_is_gone(
    box: Sandbox, api: httpx.Client
) -> None:
    project = box.store.create_project("Soon gone")
    assert api.get(f"/v1/projects/{project.hashed_id}.json").status_code == 200
    box.store.projects.pop(project.hashed_id)  # someone deleted it in Wistia
    assert api.get(f"/v1/projects/{project.hashed_id}.json").status_code == 404


def test_upload_to_a_project_that_is_gone_by_each_reading(box: Sandbox, api: httpx.Client) -> None:
    refused = upload(api, "clip.mp4", b"c", project_id="gone123456")
    assert refused.status_code == 400
    assert "project not found" not in refused.text.lower()
    box.faults.update(upload_unknown_project="not_found")
    assert upload(api, "clip.mp4", b"c", project_id="gone123456").status_code == 404
    box.faults.update(upload_unknown_project="default_project")
    landed = uploaded(api, "clip.mp4", b"c", project_id="gone123456")
    media = box.store.medias[landed["hashed_id"]]
    assert media.project.name.startswith("Uploads_")


# --- refusals of one request ----------------------------------------------------------------


def test_forbidden_answers_403_for_a_plan_without_the_feature(
    box: Sandbox, api: httpx.Client
) -> None:
    hashed = uploaded(api, "clip.mp4", b"c")["hashed_id"]
    box.faults.update(forbidden=["captions", "tags"])
    refused = api.post(f"/v1/medias/{hashed}/captions.json", data={"caption_file": "1\n"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "Captions are not available on your current plan"}
    assert api.put(f"/v1/medias/{hashed}.json", json={"tags": ["a"]}).status_code == 403
    assert api.put(f"/v1/medias/{hashed}.json", json={"name": "Renamed"}).status_code == 200
    assert api.get(f"/v1/medias/{hashed}.json").status_code == 200  # the token is fine
    box.faults.update(forbidden=["upload"])
    assert upload(api, "more.mp4", b"m").status_code == 403
    box.faults.update(forbidden=[], scope_denied=["customizations"])
    scope = api.get(f"/v1/medias/{hashed}/customizations.json")
    assert scope.status_code == 401 and scope.json()["code"] == "unauthorized_scope"


# --- swap -----------------------------------------------------------------------------------


def _swap(
    api: httpx.Client, original: str, replacement: str | None, prefix: str = "/modern"
) -> httpx.Response:
    body = {} if replacement is None else {"replacement_media_id": replacement}
    return api.put(
        f"{prefix}/medias/{original}/swap", json=body, headers={"X-Wistia-API-Version": "2026-03"}
    )


def _two_videos(api: httpx.Client) -> tuple[str, str]:
    original = uploaded(api, "talk.mp4", b"old" * 100)["hashed_id"]
    replacement = uploaded(api, "talk-v2.mp4", b"new" * 250)["hashed_id"]
    ready(api, original)
    ready(api, replacement)
    return original, replacement


def _job(api: httpx.Client, job_id: int, prefix: str = "/modern") -> str:
    answer = api.get(f"{prefix}/background_job_status/{job_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["background_job_status"]["status"])


def _finished(api: httpx.Client, job_id: int, prefix: str = "/modern") -> str:
    return wait_until(
        lambda: (s := _job(api, job_id, prefix)) in ("finished", "failed") and s,
        timeout=10,
        what="the swap's job to end",
    )


def test_swap_lifecycle_moves_the_bytes_behind_the_original(
    box: Sandbox, api: httpx.Client
) -> None:
    box.faults.update(swap_seconds=1.5)  # time to see each state, even on a busy machine
    original, replacement = _two_videos(api)
    before = api.get(f"/v1/medias/{original}.json").json()
    api.post(
        f"/v1/medias/{original}/captions.json", data={"caption_file": "1\n", "language": "eng"}
    )
    api.post(f"/v1/medias/{original}/customizations.json", json={"playerColor": "00ff00"})
    asked = _swap(api, original, replacement)
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert set(body) == {"message", "media", "background_job_status"}
    assert body["media"]["hashed_id"] == original
    assert body["background_job_status"]["status"] == "queued"
    job_id = body["background_job_status"]["id"]
    seen = [_job(api, job_id)]
    deadline = time.monotonic() + 10
    while seen[-1] not in ("finished", "failed") and time.monotonic() < deadline:
        time.sleep(0.02)
        seen.append(_job(api, job_id))
    states = [s for n, s in enumerate(seen) if n == 0 or s != seen[n - 1]]
    assert states == ["queued", "started", "finished"]
    after = api.get(f"/v1/medias/{original}.json").json()
    assert (after["hashed_id"], after["id"], after["name"]) == (
        before["hashed_id"],
        before["id"],
        before["name"],
    )
    assert original_size(after) == 750 and original_size(before) == 300
    kept = box.store.medias[original]
    new = box.store.medias[replacement]
    assert (kept.sha256, kept.file_path) == (new.sha256, new.file_path)
    assert kept.file_path is not None and kept.file_path.read_bytes() == b"new" * 250
    assert kept.captions and kept.customizations == {"playerColor": "00ff00"}
    assert api.get(f"/v1/medias/{replacement}.json").status_code == 200  # still listed
    (swap,) = box.swaps
    assert kept.updated == swap.ended  # `updated` moves when the bytes do
    assert (swap.original, swap.replacement, swap.api_version) == (
        original,
        replacement,
        "2026-03",
    )
    (record,) = [r for r in box.records if r.endpoint == "swap"]
    assert record.api_version == "2026-03"


def test_swap_can_remove_the_replacement(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(swap_seconds=0.1, swap_keeps_replacement=False)
    original, replacement = _two_videos(api)
    job_id = _swap(api, original, replacement).json()["background_job_status"]["id"]
    assert _finished(api, job_id) == "finished"
    assert api.get(f"/v1/medias/{replacement}.json").status_code == 404
    assert [m.hashed_id for m in box.store.swap_removed] == [replacement]
    listed = [m["hashed_id"] for m in api.get("/v1/medias.json").json()]
    assert listed == [original]


def test_swap_refusals(box: Sandbox, api: httpx.Client) -> None:
    video = uploaded(api, "talk.mp4", b"v" * 10)["hashed_id"]
    image = uploaded(api, "still.png", PNG)["hashed_id"]
    audio = uploaded(api, "voice.mp3", MP3)["hashed_id"]
    missing = _swap(api, video, None)
    assert missing.status_code == 400 and "replacement_media_id" in missing.json()["error"]
    for other in (image, audio):
        mismatch = _swap(api, video, other)
        assert mismatch.status_code == 400
        assert "same type" in mismatch.json()["error"]
    assert _swap(api, "nosuchmedia", video).status_code == 404
    assert _swap(api, video, "nosuchmedia").status_code == 404
    box.faults.update(forbidden=["swap"])
    refused = _swap(api, video, video)
    assert refused.status_code == 403
    assert "not available on your current plan" in refused.json()["error"]
    assert box.swaps == []
    no_token = httpx.put(
        box.modern_url + f"medias/{video}/swap", json={"replacement_media_id": image}
    )
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthorized_credentials"


def test_a_failed_swap_leaves_the_original_as_it_was(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(swap_seconds=0.1, swap_job_fails=True)
    original, replacement = _two_videos(api)
    job_id = _swap(api, original, replacement).json()["background_job_status"]["id"]
    assert _finished(api, job_id) == "failed"
    assert box.store.medias[original].size == 300
    assert original_size(api.get(f"/v1/medias/{original}.json").json()) == 300


def test_swap_on_v1_is_switchable(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(swap_seconds=0.1)
    original, replacement = _two_videos(api)
    answer = _swap(api, original, replacement, prefix="/v1")
    assert answer.status_code == 200
    job_id = answer.json()["background_job_status"]["id"]
    assert _finished(api, job_id, prefix="/v1") == "finished"
    assert box.swaps[0].api == "v1"
    box.faults.update(swap_on_v1=False)
    assert _swap(api, original, replacement, prefix="/v1").status_code == 404
    assert api.get(f"/v1/background_job_status/{job_id}").status_code == 404
    assert _job(api, job_id) == "finished"  # /modern still answers


def test_swap_can_exchange_the_files(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(swap_seconds=0.1, swap_exchanges_files=True)
    original, replacement = _two_videos(api)
    job_id = _swap(api, original, replacement).json()["background_job_status"]["id"]
    assert _finished(api, job_id) == "finished"
    assert original_size(api.get(f"/v1/medias/{replacement}.json").json()) == 300
    assert original_size(api.get(f"/v1/medias/{original}.json").json()) == 750


# --- medias made by hand, and the controls ---------------------------------------------------


def test_handmade_medias_are_listed_with_their_original_size(
    box: Sandbox, api: httpx.Client
) -> None:
    project = box.store.create_project("Library")
    old = box.add_media("intro.mp4", data=b"i" * 321, project=project.hashed_id, created=1e9)
    listed = api.get("/v1/medias.json", params={"project_id": project.hashed_id}).json()
    assert [(m["name"], original_size(m), m["status"]) for m in listed] == [
        ("intro.mp4", 321, "ready")
    ]
    assert old.sha256 is not None and old.file_path is not None
    assert listed[0]["created"].startswith("2001-09-09")


def test_handmade_medias_over_http_all_or_nothing(box: Sandbox) -> None:
    project = box.store.create_project("Library")
    url = box.url + "_sandbox/medias"
    bad = httpx.post(
        url, json=[{"name": "a.mp4", "size": 5}, {"name": "b.mp4", "size": 5, "project": "nope"}]
    )
    assert bad.status_code == 400 and box.store.medias == {}
    made = httpx.post(
        url,
        json=[
            {"name": "a.mp4", "size": 5, "project": project.hashed_id, "tags": ["x"]},
            {"name": "b.png", "data_base64": base64.b64encode(PNG).decode(), "archived": True},
        ],
    )
    assert made.status_code == 201, made.text
    a, b = made.json()
    assert (a["size"], a["project"], a["tags"], a["type"]) == (5, project.hashed_id, ["x"], "Video")
    assert (b["type"], b["archived"], b["size"]) == ("Image", True, len(PNG))
    assert b["sha256"] is not None
    shown = httpx.get(url).json()
    assert {m["name"] for m in shown} == {"a.mp4", "b.png"}
    assert {
        "sha256",
        "captions",
        "customizations",
        "tags",
        "still",
        "project",
        "archived",
        "type",
        "size",
    } <= set(shown[0])


def test_a_thousand_handmade_medias_are_cheap(box: Sandbox, api: httpx.Client) -> None:
    started = time.monotonic()
    payload = [{"name": f"clip-{n:04d}.mp4", "size": 1000 + n} for n in range(1200)]
    made = httpx.post(box.url + "_sandbox/medias", json=payload, timeout=30)
    assert made.status_code == 201
    assert time.monotonic() - started < 10
    assert api.get("/v1/account.json").json()["mediaCount"] == 1200


def test_faults_over_http_refuse_a_bad_switch_whole(box: Sandbox) -> None:
    url = box.url + "_sandbox/faults"
    refused = httpx.post(url, json={"forbidden": ["swap"], "error_body": "xml"})
    assert refused.status_code == 400 and "error_body" in refused.json()["error"]
    assert box.faults.forbidden == ()
    changed = httpx.post(url, json={"forbidden": ["swap"], "swap_keeps_replacement": False})
    assert changed.status_code == 200
    assert changed.json()["forbidden"] == ["swap"]
    assert box.faults.swap_keeps_replacement is False


def test_swaps_are_listed_for_tests_in_other_processes(box: Sandbox, api: httpx.Client) -> None:
    box.faults.update(swap_seconds=0.1)
    original, replacement = _two_videos(api)
    job_id = _swap(api, original, replacement).json()["background_job_status"]["id"]
    _finished(api, job_id)
    (swap,) = httpx.get(box.url + "_sandbox/swaps").json()
    assert swap["id"] == job_id and swap["status"] == "finished"
    assert (swap["original"], swap["replacement"]) == (original, replacement)


def test_a_faults_object_checks_its_constructor_values() -> None:
    with pytest.raises(ValueError, match="forbidden"):
        Faults(forbidden=("everything",))
    assert Faults(forbidden=("captions",)).forbidden == ("captions",)


def test_delete_still_answers_and_is_remembered(box: Sandbox, api: httpx.Client) -> None:
    hashed = uploaded(api, "clip.mp4", b"d")["hashed_id"]
    gone = api.delete(f"/v1/medias/{hashed}.json")
    assert gone.status_code == 200 and gone.json()["hashed_id"] == hashed
    assert api.get(f"/v1/medias/{hashed}.json").status_code == 404
    assert [m.hashed_id for m in box.store.deleted] == [hashed]
