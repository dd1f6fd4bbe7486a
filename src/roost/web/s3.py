"""The console's S3 page: buckets, prefixes as folders, objects with their size, time, ETag and ``s3://`` URI;
download, upload (large files in parts, from the browser), delete, create and delete buckets - Lab 2's "drill
down into your S3 bucket to find model.tar.gz". It works on the same store with the same rules as S3's API
(``roost.storage.objects``: names, keys, checks, atomic writes), behind the console's session and CSRF guards."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from roost.aws import ServiceError
from roost.serving.http import blocking_chunks
from roost.storage.objects import Expected, ObjectStore, read_range
from roost.web.common import PREFIX, console_of, require_change, require_user

router = APIRouter()


def _store(request: Request) -> ObjectStore:
    store = console_of(request).objects
    if store is None:
        raise ServiceError("NotImplemented", "This server has no S3 store.", 404)
    return store


@router.get("/s3")
async def buckets(request: Request, user: str = Depends(require_user)) -> Response:
    store = _store(request)
    rows = await run_in_threadpool(store.buckets)
    return console_of(request).page(request, "s3_buckets.html", buckets=rows, error=None)


@router.post("/s3")
async def create_bucket(request: Request, user: str = Depends(require_change)) -> Response:
    store = _store(request)
    form = await request.form()
    name = str(form.get("bucket") or "").strip()
    try:
        await run_in_threadpool(store.create_bucket, name)
    except ServiceError as err:
        rows = await run_in_threadpool(store.buckets)
        return console_of(request).page(request, "s3_buckets.html", 400, buckets=rows, error=err.message)
    return RedirectResponse(f"{PREFIX}/s3/{quote(name)}", status_code=303)


@router.get("/s3/{bucket}")
async def bucket_page(
    request: Request,
    bucket: str,
    prefix: str = "",
    after: str = "",
    highlight: str = "",
    user: str = Depends(require_user),
) -> Response:
    store = _store(request)
    console = console_of(request)
    try:
        listing = await run_in_threadpool(store.list_objects, bucket, prefix, "/", after, 200)
    except ServiceError as err:
        rows = await run_in_threadpool(store.buckets)
        return console.page(request, "s3_buckets.html", 404, buckets=rows, error=err.message)
    crumbs: list[dict[str, Any]] = [{"name": bucket, "prefix": ""}]
    parts = [p for p in prefix.split("/") if p]
    for i, part in enumerate(parts):
        crumbs.append({"name": part, "prefix": "/".join(parts[: i + 1]) + "/"})
    return console.page(
        request,
        "s3_bucket.html",
        bucket=bucket,
        key_prefix=prefix,
        crumbs=crumbs,
        folders=listing.prefixes,
        objects=listing.objects,
        next_after=listing.next_after if listing.truncated else None,
        highlight=highlight,
    )


@router.get("/s3/{bucket}/object")
async def download(request: Request, bucket: str, key: str, user: str = Depends(require_user)) -> Response:
    store = _store(request)
    info = await run_in_threadpool(store.head, bucket, key)

    name = key.rsplit("/", 1)[-1] or "object"
    headers = {
        "Content-Length": str(info.size),
        "ETag": f'"{info.etag}"',
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
    }
    return StreamingResponse(read_range(info), media_type=info.content_type, headers=headers)


@router.post("/s3/{bucket}/delete")
async def delete_bucket(request: Request, bucket: str, user: str = Depends(require_change)) -> Response:
    store = _store(request)
    try:
        await run_in_threadpool(store.delete_bucket, bucket)
    except ServiceError as err:
        return Response(err.message, status_code=err.status)
    return RedirectResponse(f"{PREFIX}/s3", status_code=303)


@router.post("/s3/{bucket}/object/delete")
async def delete_object(request: Request, bucket: str, user: str = Depends(require_change)) -> Response:
    store = _store(request)
    form = await request.form()
    key = str(form.get("key") or "")
    await run_in_threadpool(store.delete, bucket, key)
    folder = key.rpartition("/")[0]
    return RedirectResponse(
        f"{PREFIX}/s3/{quote(bucket)}?{urlencode({'prefix': folder + '/' if folder else ''})}", status_code=303
    )


# ---------------------------------------------------------------------- uploads, in parts (console.js slices the file)


@router.post("/s3/{bucket}/uploads")
async def start_upload(request: Request, bucket: str, key: str, user: str = Depends(require_change)) -> Response:
    store = _store(request)
    content_type = request.headers.get("x-content-type") or "binary/octet-stream"
    upload_id = await run_in_threadpool(store.create_upload, bucket, key, content_type=content_type)
    return JSONResponse({"uploadId": upload_id})


@router.put("/s3/{bucket}/uploads/{upload_id}/{number}")
async def upload_part(
    request: Request, bucket: str, upload_id: str, number: int, key: str, user: str = Depends(require_change)
) -> Response:
    store = _store(request)
    body = blocking_chunks(request.stream())  # iterated in the worker thread, fetched from the event loop
    info = await run_in_threadpool(store.upload_part, bucket, key, upload_id, number, body, Expected())
    return JSONResponse({"etag": info.etag})


@router.post("/s3/{bucket}/uploads/{upload_id}/complete")
async def complete_upload(
    request: Request, bucket: str, upload_id: str, key: str, user: str = Depends(require_change)
) -> Response:
    store = _store(request)
    parts = (await request.json()).get("parts", [])
    try:
        ordered: list[tuple[int, str, dict[str, str]]] = [(int(p["number"]), str(p["etag"]), {}) for p in parts]
    except (KeyError, TypeError, ValueError):
        return JSONResponse({"error": "parts must be [{number, etag}, ...]"}, status_code=400)
    info = await run_in_threadpool(store.complete, bucket, key, upload_id, ordered)
    return JSONResponse({"etag": info.etag, "size": info.size})
