"""The templates seam (harness/seams/templates.py): moto's CloudFormation parses YAML with libyaml.

No AWS behaviour changes: every template must yield the document PyYAML's pure-Python loader gives
(with moto's constructor for the short-form intrinsics), and the seam must fail loudly when moto's
modules stop importing yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from moto.cloudformation import models, responses
from moto.cloudformation.utils import yaml_tag_constructor

import harness.seams as harness_seams
from harness.seams import templates

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "deployer" / "templates").glob("*.yaml"))


def test_the_seam_is_registered_and_gives_moto_the_libyaml_loader() -> None:
    assert harness_seams.SEAMS["templates"] is templates.install
    harness_seams.install()
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML has no libyaml: the seam leaves moto alone")
    for module in (models, responses):
        assert isinstance(module.yaml, templates.YamlForMoto)
        assert module.yaml.Loader is templates.TemplateLoader
        assert module.yaml.load is yaml.load


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_each_deployer_template_parses_to_the_same_document(path: Path) -> None:
    harness_seams.install()
    text = path.read_text(encoding="utf-8")
    yaml.add_multi_constructor("", yaml_tag_constructor)
    expected = yaml.load(text, Loader=yaml.Loader)
    stand_in = models.yaml  # type: ignore[attr-defined]  # the seam's stand-in
    stand_in.add_multi_constructor("", yaml_tag_constructor)
    assert stand_in.load(text, Loader=stand_in.Loader) == expected
    assert "Resources" in expected
