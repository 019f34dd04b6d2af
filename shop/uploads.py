"""Files users upload: photos (checked and re-encoded) and import files kept between preview and confirm."""
from __future__ import annotations

import io
import re
import secrets
from pathlib import Path

from flask import current_app
from PIL import Image, UnidentifiedImageError
from flask_babel import gettext as _

from .errors import ValidationFailed

PHOTO_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_PHOTO_PIXELS = 40_000_000
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")


def _folder(name: str) -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"]) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_photo(data: bytes, folder: str = "products") -> str:
    """Check a photo by its content, re-encode it (dropping anything hidden in it), store it."""
    Image.MAX_IMAGE_PIXELS = MAX_PHOTO_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if fmt not in PHOTO_FORMATS:
                raise ValidationFailed.on("photo", _("只支持 JPEG、PNG 或 WebP 图片。"))
            image.thumbnail((1600, 1600))
            if fmt == "JPEG" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format=fmt)
    except ValidationFailed:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValidationFailed.on("photo", _("上传的文件不是有效的图片。")) from exc
    name = f"{secrets.token_hex(16)}.{PHOTO_FORMATS[fmt]}"
    (_folder(folder) / name).write_bytes(out.getvalue())
    return name


def photo_path(name: str, folder: str = "products") -> Path | None:
    if not re.match(r"^[0-9a-f]{32}\.(jpg|png|webp)$", name or ""):
        return None
    path = _folder(folder) / name
    return path if path.exists() else None


def stash_import(kind: str, user_id: int, data: bytes) -> str:
    token = secrets.token_urlsafe(24)
    (_folder("imports") / f"{kind}-{user_id}-{token}").write_bytes(data)
    return token


def load_import(kind: str, user_id: int, token: str) -> bytes | None:
    if not _TOKEN_RE.match(token or ""):
        return None
    path = _folder("imports") / f"{kind}-{user_id}-{token}"
    return path.read_bytes() if path.exists() else None


def drop_import(kind: str, user_id: int, token: str) -> None:
    if _TOKEN_RE.match(token or ""):
        (_folder("imports") / f"{kind}-{user_id}-{token}").unlink(missing_ok=True)
