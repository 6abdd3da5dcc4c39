"""Downloading gallery snapshots from central with the edge's credential, verified by sha256."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from common.errors import FacegateError


class SnapshotError(FacegateError):
    """A snapshot could not be downloaded, or its bytes are not the ones the manifest names."""


@dataclass(frozen=True, slots=True)
class SnapshotFetcher:
    """GET {central}/api/v1/galleries/{id}/snapshot?version=N with `Authorization: Bearer <token>`."""

    central_url: str
    token: str = ""
    timeout_s: float = 30.0
    max_bytes: int = 512 * 1024 * 1024

    def url(self, gallery: str, version: int) -> str:
        base = self.central_url.rstrip("/")
        return f"{base}/api/v1/galleries/{urllib.parse.quote(gallery)}/snapshot?version={version}"

    def fetch(self, gallery: str, version: int, sha256: str) -> bytes:
        """The snapshot's bytes; SnapshotError unless their sha256 is `sha256` (when given)."""
        request = urllib.request.Request(self.url(gallery, version))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as err:
            raise SnapshotError(
                f"snapshot {gallery}@{version}: central answered {err.code} {err.reason}"
            ) from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise SnapshotError(f"snapshot {gallery}@{version}: cannot reach central: {err}") from err
        if len(data) > self.max_bytes:
            raise SnapshotError(f"snapshot {gallery}@{version} is over {self.max_bytes} bytes")
        actual = hashlib.sha256(data).hexdigest()
        if sha256 and actual != sha256:
            raise SnapshotError(
                f"snapshot {gallery}@{version} has sha256 {actual[:16]}…, "
                f"the manifest says {sha256[:16]}…: refused"
            )
        return data
