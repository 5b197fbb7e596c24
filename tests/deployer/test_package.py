"""Lambda zips are deterministic and self-contained: deployer.package."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

from deployer import package


def test_building_twice_gives_the_same_bytes_and_key() -> None:
    first, second = package.build_all(), package.build_all()
    assert {name: p.body for name, p in first.items()} == {name: p.body for name, p in second.items()}
    for name, lambda_package in first.items():
        assert lambda_package.key == f"lambdas/{name}-{lambda_package.sha256[:16]}.zip"


def test_a_zip_holds_only_its_handler_and_the_shared_modules_it_imports() -> None:
    with zipfile.ZipFile(io.BytesIO(package.build("start_training").body)) as archive:
        assert archive.namelist() == [
            "deployer/__init__.py",
            "deployer/lambdas/__init__.py",
            "deployer/lambdas/contracts.py",
            "deployer/lambdas/pipeline_job.py",
            "deployer/lambdas/start_training.py",
        ]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with zipfile.ZipFile(io.BytesIO(package.build("api_proxy").body)) as archive:
        assert "deployer/lambdas/pipeline_job.py" not in archive.namelist()


def test_each_handler_imports_from_its_zip_alone(tmp_path: Path) -> None:
    """As on Lambda: only the zip and the standard library plus boto3 (the runtime's) on the path."""
    for name, lambda_package in package.build_all().items():
        folder = tmp_path / name
        with zipfile.ZipFile(io.BytesIO(lambda_package.body)) as archive:
            archive.extractall(folder)
        code = f"import deployer.lambdas.{name} as m; assert callable(m.handler); print(m.__file__)"
        result = subprocess.run(
            [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); {code}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=folder,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().startswith(str(folder))
