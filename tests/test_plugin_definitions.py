"""The Hub definition and meltano.yml's extractor say what the tap itself says in --about.

The config schema in tap.py is the one source of every setting's name, type, default, label and
description, and the tap's capabilities are what singer-sdk reports for it; both plugin files
are checked against ``tap-klaviyo-segments --about --format=json`` so they cannot drift. Their
``commands`` are the same in both, and run programs the package installs. The documents that
copy facts for readers (the configuration tables, the target-duckdb + duckdb pair that loads
every row) are checked against their sources too.
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
README = REPO / "README.md"
CONFIGURATION_DOC = REPO / "docs" / "configuration.md"
PUBLISHING_DOC = REPO / "docs" / "publishing.md"

#: singer-sdk's own settings (stream maps, flattening, ACTIVATE_VERSION): documented by the SDK,
#: so the configuration tables need not list them.
SDK_SETTINGS = {
    "emit_activate_version_messages",
    "stream_maps",
    "stream_map_config",
    "faker_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
}

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

#: Hub fields not known before the project has a public home (docs/publishing.md lists them).
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
    """Nothing invented: what is unknown is null here and listed once, in docs/publishing.md."""
    definition = hub()
    unknown = {key for key, value in definition.items() if value is None}
    assert unknown == UNKNOWN_UNTIL_PUBLISHED
    doc = PUBLISHING_DOC.read_text()
    section = doc.split("## Meltano Hub", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE))
    assert listed >= UNKNOWN_UNTIL_PUBLISHED, listed


def configuration_table(path: Path) -> dict[str, str]:
    """``{key: default cell}`` of the first table of a document's "Configuration" section."""
    text = path.read_text()
    section = re.split(r"^#+ Configuration$", text, maxsplit=1, flags=re.MULTILINE)[1]
    table = section[section.index("\n| key |") :].split("\n\n", 1)[0].strip()
    shown = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        shown[cells[0].strip("`")] = cells[2]
    return shown


@pytest.mark.parametrize("path", [README, CONFIGURATION_DOC], ids=lambda p: p.name)
def test_the_configuration_tables_show_the_schema_defaults(about, path):
    """The documents' defaults are copies for readers; this keeps them the schema's."""
    shown = configuration_table(path)
    assert shown, f"{path.name} has no configuration table"
    properties = about["settings"]["properties"]
    for key, default in shown.items():
        assert key in properties, f"{path.name} documents {key!r}, which the schema lacks"
        if "default" not in properties[key]:
            assert not default.startswith("`"), f"{key}: {path.name} shows default {default}"
            continue
        expected = properties[key]["default"]
        if default == "all four":
            assert len(expected) == 4, key
            continue
        assert default.startswith("`"), f"{key}: {path.name} shows {default}, schema {expected!r}"
        text = default.strip("`")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        assert value == expected, f"{key}: {path.name} {value!r}, schema {expected!r}"


def test_the_configuration_doc_lists_every_setting_of_the_tap(about):
    """docs/configuration.md is where the README sends readers for every setting."""
    own = set(about["settings"]["properties"]) - SDK_SETTINGS
    assert set(configuration_table(CONFIGURATION_DOC)) == own


@pytest.mark.parametrize("where", list(DEFINITIONS))
def test_the_plan_command_runs_the_installed_plan_with_meltanos_config(where):
    """`meltano invoke tap-klaviyo-segments:plan`: the package's plan program, fed the config
    Meltano sets as TAP_KLAVIYO_SEGMENTS_* variables (Meltano hands a command no config file)."""
    commands = DEFINITIONS[where]()["commands"]
    assert set(commands) == {"plan"}
    plan = commands["plan"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'{plan["executable"]} = "tap_klaviyo_segments.tap:plan_main"' in pyproject
    assert plan["args"].split() == ["--config", "ENV"]
    assert plan["description"]


def test_the_hub_file_and_meltano_yml_define_the_same_commands():
    assert hub()["commands"] == inline_extractor()["commands"]


def pinned_duckdb_pair() -> str:
    """meltano.yml's target-duckdb pip_url, which must pin both packages exactly."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-duckdb"]
    pip_url: str = loader["pip_url"]
    names = [
        re.fullmatch(r"([a-z-]+)==\d+(\.\d+)*", requirement) for requirement in pip_url.split()
    ]
    assert all(names), f"meltano.yml: target-duckdb pip_url {pip_url!r} is not name==version pins"
    assert [m.group(1) for m in names if m] == ["target-duckdb", "duckdb"], pip_url
    return pip_url


def test_readme_and_hub_file_name_the_pinned_target_duckdb_pair():
    """A user copies the pair from the README or the Hub page: it must be the one the tests load."""
    pair = pinned_duckdb_pair()
    readme = README.read_text()
    meltano_section = readme.split("\n## Meltano\n", 1)[1].split("\n## ", 1)[0]
    assert f"pip_url: {pair}" in meltano_section
    assert f"`{pair}`" in meltano_section
    usage = hub()["usage"]
    assert f"pip_url: {pair}`" in usage
