"""The watermark secret key: generated, saved (hex, mode 0600), loaded from settings.

The secret never appears in ``repr``, logs, outputs or error messages; ``key_id`` (a
domain-separated BLAKE2b fingerprint, 12 hex characters) identifies it instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from distillscope.errors import WatermarkError
from distillscope.settings import Settings

logger = logging.getLogger(__name__)

KEY_BYTES = 32
_KEYGEN_HINT = "run `distillscope watermark keygen` to create one"


class WatermarkKey:
    """A 32-byte watermark secret. ``key_id`` is safe to print; the secret is not."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != KEY_BYTES:
            size = len(secret) if isinstance(secret, (bytes, bytearray)) else type(secret).__name__
            raise WatermarkError(f"a watermark key must be {KEY_BYTES} bytes, got {size}", hint=_KEYGEN_HINT)
        self._secret = bytes(secret)

    @classmethod
    def generate(cls) -> "WatermarkKey":
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str, *, source: str = "the key") -> "WatermarkKey":
        """Parse a 64-character hex key; errors name ``source`` but never echo the value."""
        cleaned = text.strip().lower()
        if len(cleaned) != 2 * KEY_BYTES:
            raise WatermarkError(f"{source} is not a watermark key: expected {2 * KEY_BYTES} hex characters, "
                                 f"found {len(cleaned)}", hint=_KEYGEN_HINT)
        try:
            return cls(bytes.fromhex(cleaned))
        except ValueError:
            raise WatermarkError(f"{source} is not a watermark key: it contains non-hex characters",
                                 hint=_KEYGEN_HINT) from None

    @classmethod
    def load_file(cls, path: str | Path) -> "WatermarkKey":
        p = Path(path)
        if not p.is_file():
            raise WatermarkError(f"no watermark key file at {p}",
                                 hint=f"{_KEYGEN_HINT}, or set DISTILLSCOPE_WATERMARK_KEY_FILE")
        try:
            text = p.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise WatermarkError(f"watermark key file {p} cannot be read ({type(exc).__name__})",
                                 hint=_KEYGEN_HINT) from None
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("watermark key file %s is readable by other users; run chmod 600 on it", p)
        return cls.from_hex(text, source=f"key file {p}")

    @classmethod
    def load(cls, settings: Settings) -> "WatermarkKey":
        """Resolve the key: ``settings.watermark_key`` (env) first, then the key file."""
        if settings.watermark_key is not None:
            key = cls.from_hex(settings.watermark_key.get_secret_value(),
                               source="DISTILLSCOPE_WATERMARK_KEY / settings.watermark_key")
        else:
            key = cls.load_file(settings.resolved_watermark_key_file)
        logger.info("watermark key %s loaded", key.key_id)
        return key

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the key as hex with mode 0600, atomically; refuses to overwrite unless asked."""
        p = Path(path)
        if p.exists() and not overwrite:
            raise WatermarkError(f"{p} already exists; refusing to overwrite a watermark key",
                                 hint="pass --force to replace it (text watermarked with the old key will "
                                      "no longer be detected with the new one)")
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(self._secret.hex() + "\n")
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.info("watermark key %s written to %s", self.key_id, p)
        return p

    @property
    def key_id(self) -> str:
        """A short fingerprint: 12 hex chars of BLAKE2b(secret, person='dscope.keyid')."""
        return hashlib.blake2b(self._secret, digest_size=6, person=b"dscope.keyid.v1").hexdigest()

    @property
    def secret(self) -> bytes:
        """The raw secret, for the PRF only. Never log or print it."""
        return self._secret

    def __repr__(self) -> str:
        return f"WatermarkKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WatermarkKey) and secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __copy__(self) -> "WatermarkKey":
        return self

    def __deepcopy__(self, memo: dict) -> "WatermarkKey":
        return self
