"""The Hub definition and meltano.yml's extractor say what the tap itself says in --about.

The config schema in tap.py is the one source of every setting's name, type, default, label and
description, and the tap's capabilities are what singer-sdk reports for it; both plugin files
are checked against ``tap-klaviyo-segments --about --format=json`` so they cannot drift.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HUB_FILE = REPO / "hub" / "extractors" / "tap-klaviyo-segments.yml"

#: The Meltano setting kind for each JSON schema type of the config schema. A number is a
#: string to Meltano (see meltano.yml): `kind: decimal` breaks from the environment.
KIND = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "number": "string",
    "array": "array",
    "object": "object",
}

#: Hub fields not known before the project has a public home (README "Meltano Hub" lists them).
UNKNOWN_UNTIL_PUBLISHED = {"variant", "repo", "docs"}


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "tap-klaviyo-segments"), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def hub() -> dict[str, Any]:
    return yaml.safe_load(HUB_FILE.read_text())


def inline_extractor() -> dict[str, Any]:
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (extractor,) = [
        plugin
        for plugin in project["plugins"]["extractors"]
        if plugin["name"] == "tap-klaviyo-segments"
    ]
    return extractor


def expected_setting(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The Meltano setting entry a config-schema property implies."""
    types = [spec["type"]] if isinstance(spec["type"], str) else spec["type"]
    (main,) = [kind for kind in types if kind not in ("null", "string")] or ["string"]
    setting: dict[str, Any] = {
        "name": name,
        "kind": KIND[main],
        "label": spec["title"],
        "description": spec["description"],
    }
    if "default" in spec:
        setting["value"] = spec["default"]
    if spec.get("secret"):
        setting["sensitive"] = True
    return setting


DEFINITIONS = {"hub": hub, "meltano.yml": inline_extractor}


@pytest.mark.parametrize("where", list(DEFINITIONS))
def test_capabilities_are_what_about_reports(about, where):
    assert DEFINITIONS[where]()["capabilities"] == about["capabilities"]


@pytest.mark.parametrize("where", list(DEFINITIONS))
def test_settings_are_the_config_schema(about, where):
    properties = about["settings"]["properties"]
    settings = DEFINITIONS[where]()["settings"]
    assert [s["name"] for s in settings] == list(properties), "same keys, same order"
    for setting in settings:
        assert setting == expected_setting(setting["name"], properties[setting["name"]])


@pytest.mark.parametrize("where", list(DEFINITIONS))
def test_the_key_is_required_and_sensitive(about, where):
    definition = DEFINITIONS[where]()
    assert definition["settings_group_validation"] == [["api_key"]]
    assert about["settings"]["required"] == ["api_key"]
    (key,) = [s for s in definition["settings"] if s["name"] == "api_key"]
    assert key["sensitive"] is True
    assert "value" not in key


def test_every_number_setting_is_a_string_kind_and_the_schema_takes_strings(about):
    properties = about["settings"]["properties"]
    numbers = [name for name, spec in properties.items() if "number" in spec["type"]]
    assert numbers, "the schema has fractional settings"
    for name in numbers:
        assert "string" in properties[name]["type"], name


def test_the_hub_file_has_every_hub_field():
    definition = hub()
    for field in (
        "name",
        "namespace",
        "variant",
        "label",
        "description",
        "repo",
        "docs",
        "pip_url",
        "executable",
        "capabilities",
        "settings",
        "settings_group_validation",
        "keywords",
        "domain_url",
    ):
        assert field in definition, field
    assert definition["name"] == "tap-klaviyo-segments"
    assert definition["namespace"] == "tap_klaviyo_segments"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'name = "{definition["pip_url"]}"' in pyproject
    assert f'{definition["executable"]} = "tap_klaviyo_segments.tap:' in pyproject
    assert definition["namespace"] == inline_extractor()["namespace"]


def test_unknown_urls_are_null_and_listed_in_one_place():
    """Nothing invented: what is unknown is null here and listed once, in the README."""
    definition = hub()
    unknown = {key for key, value in definition.items() if value is None}
    assert unknown == UNKNOWN_UNTIL_PUBLISHED
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Meltano Hub", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE))
    assert listed >= UNKNOWN_UNTIL_PUBLISHED, listed


def test_the_readme_configuration_table_shows_the_schema_defaults(about):
    """The README's defaults are copies for readers; this keeps them the schema's."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    properties = about["settings"]["properties"]
    shown = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        key, default = cells[0].strip("`"), cells[2]
        assert key in properties, f"README documents {key!r}, which the schema lacks"
        shown[key] = default
    own = [key for key in properties if key in shown]
    assert set(shown) == set(own)
    for key, default in shown.items():
        if "default" not in properties[key]:
            assert not default.startswith("`"), f"{key}: README shows default {default}"
            continue
        expected = properties[key]["default"]
        if default == "all four":
            assert len(expected) == 4, key
            continue
        assert default.startswith("`"), f"{key}: README shows {default}, schema {expected!r}"
        text = default.strip("`")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        assert value == expected, f"{key}: README {value!r}, schema {expected!r}"
