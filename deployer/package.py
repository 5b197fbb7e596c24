"""Deterministic Lambda zips: the same sources always give the same bytes, hence the same S3 key.

Each zip holds the package path `deployer/lambdas/` with only the function's own module and the shared
modules it imports (`pipeline_job`, `contracts`), plus empty `__init__.py` files, so the handler is
`deployer.lambdas.<name>.handler` both here and on AWS. Entries are sorted, dated 1980-01-01 and
mode 0644; the key is `lambdas/<name>-<sha256[:16]>.zip`, so a second deploy of unchanged code
uploads nothing and leaves the stack's parameters unchanged.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FUNCTIONS", "LambdaPackage", "build", "build_all", "content_key"]

LAMBDAS_DIR = Path(__file__).resolve().parent / "lambdas"

# Function module -> the shared modules it imports. Explicit, so a zip never carries another's code.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "start_training": ("pipeline_job", "contracts"),
    "register_model": ("pipeline_job", "contracts"),
    "publish_api": ("pipeline_job", "contracts"),
    "api_proxy": (),
}

_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaPackage:
    name: str
    body: bytes
    key: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def content_key(folder: str, stem: str, body: bytes, suffix: str) -> str:
    return f"{folder}/{stem}-{hashlib.sha256(body).hexdigest()[:16]}{suffix}"


def build(name: str) -> LambdaPackage:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown Lambda {name!r}; known: {sorted(FUNCTIONS)}")
    files = {
        "deployer/__init__.py": b"",
        "deployer/lambdas/__init__.py": b"",
        f"deployer/lambdas/{name}.py": (LAMBDAS_DIR / f"{name}.py").read_bytes(),
    }
    for shared in FUNCTIONS[name]:
        files[f"deployer/lambdas/{shared}.py"] = (LAMBDAS_DIR / f"{shared}.py").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    body = buffer.getvalue()
    return LambdaPackage(name=name, body=body, key=content_key("lambdas", name, body, ".zip"))


def build_all() -> dict[str, LambdaPackage]:
    return {name: build(name) for name in FUNCTIONS}
