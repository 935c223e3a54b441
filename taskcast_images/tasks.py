"""``image.filter``: download an image, apply a filter, store the result, hand back its URL.

Also reachable as ``POST /images`` with the payload as the body (the type's shortcut).
"""

from __future__ import annotations

from typing import Any

from taskcast import TaskContext, task

from . import fetch, filters, results

ALLOWLIST = fetch.allowlist_from_env()
"""``TASKCAST_FETCH_ALLOWLIST``, read once, at import: a malformed one stops the worker at start."""

# The S3 clients, built (and TASKCAST_PRESIGN_ENDPOINT_URL checked) at import, in the worker
# before it forks: each job's work horse inherits them instead of building its own.
results.current()

PAYLOAD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "filter"],
    "properties": {
        "url": {
            "type": "string",
            "maxLength": 2048,
            "pattern": "^[hH][tT][tT][pP][sS]?://[^/?#@\\s]+([/?#][^\\s]*)?$",
            "description": "the image to process: an http or https URL",
        },
        "filter": {"enum": sorted(filters.FILTERS), "description": "what to do to it"},
        "params": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "radius": {"type": "number", "minimum": 0.1, "maximum": 50, "default": 2},
                "max_side": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 256},
                "degrees": {"type": "number", "minimum": -360, "maximum": 360, "default": 90},
            },
            "description": "radius (blur), max_side (thumbnail), degrees (rotate, clockwise)",
        },
        "format": {"enum": sorted(filters.OUTPUT), "default": "png"},
    },
}


@task(
    "image.filter",
    payload=PAYLOAD,
    queue="images",
    shortcut="images",
    max_attempts=3,
    retry_base_s=2,
    timeout_s=120,
    # Pillow decodes images from anywhere in C, and a large one leaves the process's heap
    # large: each attempt gets a process of its own, which a crash or the memory ends with.
    isolated=True,
)
def filter_image(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Downloads an image (at most 20 MB, never from this machine's own network), applies a
    filter with Pillow and stores the result in the results bucket, with a presigned URL."""
    ctx.progress(5, "downloading")
    reported = [0]

    def downloaded(count: int) -> None:
        if count - reported[0] >= 1024 * 1024:  # about once a MiB
            reported[0] = count
            ctx.progress(5 + 25 * count / fetch.MAX_BYTES, f"downloading: {count} bytes")

    # fetch.FetchError and filters.ImageRefused are TaskFailed: they fail the task as they are.
    fetched = fetch.fetch(payload["url"], allowlist=ALLOWLIST, on_bytes=downloaded)
    ctx.emit("stage", {"stage": "download", "bytes": len(fetched.body)})
    ctx.progress(30, f"downloaded {len(fetched.body)} bytes")
    ctx.raise_if_cancelled()
    image = filters.decode(fetched.body)
    ctx.emit("stage", {"stage": "decode", "width": image.width, "height": image.height})
    ctx.progress(50, f"decoded {image.width}x{image.height} {image.format}")
    ctx.raise_if_cancelled()
    rendered = filters.encode(
        filters.apply(image, payload["filter"], payload["params"]), payload["format"]
    )
    ctx.emit("stage", {"stage": "filter", "bytes": len(rendered.body)})
    ctx.progress(80, f"{payload['filter']}: {len(rendered.body)} bytes of {rendered.content_type}")
    key = f"images/{ctx.task_id}.{payload['format']}"  # a retry overwrites, never duplicates
    stored = results.current().put(key, rendered.body, rendered.content_type)
    ctx.emit("stage", {"stage": "upload", "bytes": len(rendered.body), "key": key})
    return {
        "bucket": stored.bucket,
        "key": stored.key,
        "size": len(rendered.body),
        "width": rendered.width,
        "height": rendered.height,
        "content_type": rendered.content_type,
        "url": stored.url,
        "url_expires_at": stored.url_expires_at,
        "url_expires_in_s": results.URL_EXPIRY_S,
        "source": {"url": fetched.url, "bytes": len(fetched.body)},
    }
