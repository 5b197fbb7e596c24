"""Seam: moto's CloudFormation parses YAML templates with libyaml's parser, not PyYAML's pure-Python one.

Why: moto 5.2.5 (`cloudformation/models.py` and `responses.py`) calls
`yaml.load(template, Loader=yaml.Loader)` several times per stack operation (CreateChangeSet,
ExecuteChangeSet, the stack's own template parse, GetTemplateSummary), each after
`yaml.add_multi_constructor("", yaml_tag_constructor)` for the short-form intrinsics (`!Ref`, `!Sub`).
The pure-Python parser took 0.72 s for `platform.yaml` on this machine under load, libyaml's 0.15 s
(measured), several times per deploy and again for the API stack at PublishApi.

What changes: only the parser. The loader here is PyYAML's `CLoader` (libyaml's parser with PyYAML's
own `Constructor` and `Resolver`, the ones `yaml.Loader` uses), with moto's tag constructor registered
on it too, so every template yields the same document (a test compares both loaders on the deployer's
templates). moto's two modules see a stand-in for the `yaml` module whose `Loader` is that loader and
which passes everything else to PyYAML. Without libyaml (a PyYAML built without it) nothing is replaced.
"""

from __future__ import annotations

from typing import Any

import yaml

# The moto modules whose `yaml` global this seam replaces. Checked at install.
REPLACED = ("moto.cloudformation.models", "moto.cloudformation.responses")


class TemplateLoader(yaml.CLoader):  # type: ignore[misc,name-defined]  # CLoader is untyped
    """libyaml's parser, PyYAML's constructor and resolver (what yaml.Loader uses)."""


class YamlForMoto:
    """What moto's CloudFormation modules see as `yaml`: PyYAML, with `Loader` = `TemplateLoader`."""

    Loader = TemplateLoader

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)

    @staticmethod
    def add_multi_constructor(tag_prefix: str, constructor: Any, Loader: Any = None) -> None:
        # moto registers its tag constructor before each load: on PyYAML's loaders, as it asked,
        # and on the loader its loads now use.
        yaml.add_multi_constructor(tag_prefix, constructor, Loader=Loader)
        TemplateLoader.add_multi_constructor(tag_prefix, constructor)


def install() -> None:
    if not getattr(yaml, "__with_libyaml__", False):
        return
    import importlib

    stand_in = YamlForMoto()
    for module_name in REPLACED:
        module = importlib.import_module(module_name)
        if getattr(module, "yaml", None) is not yaml and not isinstance(module.yaml, YamlForMoto):
            raise RuntimeError(
                f"moto moved: {module_name} no longer imports yaml; port harness/seams/templates.py"
            )
        module.yaml = stand_in  # type: ignore[attr-defined]
