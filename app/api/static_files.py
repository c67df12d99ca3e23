"""Static files served from a fixed list: the names in a directory when the app starts.

A request names a file of that list or gets a plain 404: no path reaches the filesystem,
so nothing like ``..``, ``.`` or a NUL byte can make a 500 or a 404 that names a path.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter

from app.api.auth import OPEN

# The dashboard and Swagger UI are changed only by an upgrade, which restarts the node.
_CACHE = "public, max-age=300"


def _listing(directory: Path) -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            files[path.name] = (path.read_bytes(), media_type)
    return files


def static_router(prefix: str, directory: Path | str) -> Router:
    """A router serving the files directly in ``directory`` under ``prefix``, open to all."""
    files = _listing(Path(directory))

    @get("/{name:str}", include_in_schema=False, opt=OPEN, sync_to_thread=False)
    def static_file(name: Annotated[str, PathParameter()]) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFoundException()
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": _CACHE})

    return Router(path=prefix, route_handlers=[static_file])
