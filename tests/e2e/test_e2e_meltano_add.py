"""The documented ways into another Meltano project, and settings from each of Meltano's sources.

A fresh Meltano project in tmp (its own system directory, so nothing of the repository's
.meltano/ is touched) gets the tap with ``meltano add --from-ref`` (the Hub file) or
``meltano add --custom`` (the prompts answered), as the README and docs/meltano.md show.
Fractional settings then come from meltano.yml, from ``meltano config set`` and from the
environment; what Meltano hands the tap (``meltano invoke --dump=config``) is what the tap's
own call plan and a real sync use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from e2e_scenario import RUN_TIMEOUT

from klaviyo_standin import StandinServer, StandinSettings

HUB_FILE = REPO_ROOT / "hub" / "extractors" / "tap-klaviyo-segments.yml"
TAP = "tap-klaviyo-segments"


class Project:
    """A throw-away Meltano project: ``meltano ARGS`` in ``root`` with its own system dir."""

    def __init__(self, meltano_bin: Path, root: Path) -> None:
        self.bin = meltano_bin
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "meltano.yml").write_text(
            "project_id: readme-example\nsend_anonymous_usage_stats: false\n"
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TAP_", "TARGET_", "MELTANO_"))
        }
        self.env.update(
            {
                "MELTANO_PROJECT_ROOT": str(root),
                "MELTANO_SYS_DIR_ROOT": str(root / ".meltano"),
                "MELTANO_DATABASE_URI": f"sqlite:///{root / 'meltano.db'}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_CLI_LOG_LEVEL": "warning",
                "UV_CACHE_DIR": os.environ.get(
                    "UV_CACHE_DIR", str(REPO_ROOT / ".meltano" / ".uv-cache")
                ),
            }
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, (
            f"meltano {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
        return proc

    def plugin(self) -> dict[str, Any]:
        project = yaml.safe_load((self.root / "meltano.yml").read_text())
        (extractor,) = project["plugins"]["extractors"]
        return extractor

    def edit_plugin(self, **changes: Any) -> None:
        path = self.root / "meltano.yml"
        project = yaml.safe_load(path.read_text())
        project["plugins"]["extractors"][0].update(changes)
        path.write_text(yaml.safe_dump(project, sort_keys=False))

    def dumped_config(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The config file Meltano writes for the tap (parsed as the tap parses it)."""
        return json.loads(self.run("invoke", "--dump=config", TAP, env=env).stdout)


@pytest.fixture(scope="module")
def standin() -> Any:
    with StandinServer(StandinSettings(segment_count=3, seed=9, rate_limits_enabled=False)) as s:
        yield s


@pytest.fixture(scope="module")
def from_ref(meltano_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The README's `meltano add --from-ref`, then pip_url pointed at this checkout."""
    project = Project(meltano_bin, tmp_path_factory.mktemp("from-ref") / "project")
    project.run(
        "add", "--plugin-type", "extractor", "--no-install", "--from-ref", str(HUB_FILE), TAP
    )
    project.edit_plugin(pip_url=f"-e {REPO_ROOT}")
    project.run("install", TAP)
    return project


def test_from_ref_brings_the_hub_definition(from_ref: Project) -> None:
    hub = yaml.safe_load(HUB_FILE.read_text())
    added = from_ref.plugin()
    assert added["capabilities"] == hub["capabilities"]
    assert added["settings"] == hub["settings"]
    assert added["settings_group_validation"] == hub["settings_group_validation"]
    assert added["namespace"] == hub["namespace"]
    assert added["executable"] == hub["executable"]


def test_fractions_from_meltano_yml_config_set_and_the_environment(
    from_ref: Project, standin: StandinServer, tmp_path: Path
) -> None:
    """Each source of a fractional setting reaches the tap as that number."""
    from_ref.edit_plugin(config={"request_timeout": 7.5})  # a plain number in meltano.yml
    from_ref.run("config", "set", TAP, "report_calls_per_second", "0.25")
    from_ref.run("config", "set", TAP, "retry_initial_wait_seconds", "0.01")
    from_ref.run("config", "set", TAP, "segment_ids", json.dumps(standin.account.segment_ids()))
    env = {
        "TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_MINUTE": "600.5",
        "TAP_KLAVIYO_SEGMENTS_MAX_RETRY_WAIT_SECONDS": "1.5",
        "TAP_KLAVIYO_SEGMENTS_API_URL": standin.url,
        "TAP_KLAVIYO_SEGMENTS_API_KEY": standin.settings.api_key,
        "TAP_KLAVIYO_SEGMENTS_START_DATE": "2026-01-01",
        "TAP_KLAVIYO_SEGMENTS_END_DATE": "2026-01-03",
    }
    config = from_ref.dumped_config(env)
    assert float(config["request_timeout"]) == 7.5
    assert float(config["report_calls_per_second"]) == 0.25
    assert float(config["report_calls_per_minute"]) == 600.5
    assert float(config["max_retry_wait_seconds"]) == 1.5

    # The tap's call plan reads the same file the same way the sync does: the pace it prints
    # is the one the tap keeps.
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    plan_bin = Path(sys.executable).parent / "tap-klaviyo-segments-plan"
    plan = subprocess.run(
        [str(plan_bin), "--config", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    pace = json.loads(plan.stdout)["pace"]
    assert pace["report_calls_per_minute"] == 600.5
    assert pace["report_calls_per_second"] == 0.25
    assert pace["seconds_per_call"] == 4

    # And a real sync through Meltano with these settings (0.25 a second: 4 s per report call,
    # so only the values report and one series window: 2 calls).
    env["TAP_KLAVIYO_SEGMENTS_SERIES_INTERVALS"] = '["weekly"]'
    env["TAP_KLAVIYO_SEGMENTS_VALUES_TIMEFRAMES"] = '["last_7_days"]'
    env["TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_SECOND"] = "100"
    standin.clear_log()
    proc = from_ref.run("invoke", TAP, env=env)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    assert streams == {"segments", "segment_values", "segment_series"}, proc.stderr[-2000:]
    assert len(standin.report_calls()) == 2


def test_custom_add_with_the_readme_answers(
    meltano_bin: Path, tmp_path: Path, about_json: dict[str, Any]
) -> None:
    """`meltano add --custom` answered as docs/meltano.md shows gives the tap's capabilities."""
    doc = (REPO_ROOT / "docs" / "meltano.md").read_text()
    answers = {}
    for line in doc.splitlines():
        if line.startswith("#   (") and ")" in line:
            prompt, _, answer = line[len("#   (") :].partition(")")
            answers[prompt] = answer.strip()
    assert set(answers) == {"namespace", "pip_url", "executable", "capabilities", "settings"}
    answers["pip_url"] = f"-e {REPO_ROOT}"
    project = Project(meltano_bin, tmp_path / "custom")
    stdin = "".join(
        answers[key] + "\n"
        for key in ("namespace", "pip_url", "executable", "capabilities", "settings")
    )
    project.run("add", "--custom", "--plugin-type", "extractor", "--no-install", TAP, stdin=stdin)
    added = project.plugin()
    assert added["namespace"] == "tap_klaviyo_segments"
    assert added["executable"] == TAP
    assert added["capabilities"] == about_json["capabilities"]
    properties = about_json["settings"]["properties"]
    for setting in added["settings"]:
        assert setting["name"] in properties, setting
    (key,) = [s for s in added["settings"] if s["name"] == "api_key"]
    assert key.get("sensitive") is True


def test_the_plan_command_plans_with_meltanos_config(
    from_ref: Project, standin: StandinServer, tmp_path: Path
) -> None:
    """`meltano invoke tap-klaviyo-segments:plan`, the Hub file's command, plans with the config
    Meltano gives the tap (meltano.yml, `meltano config set` and the environment), without a
    report call: the same plan as the plan program run on the config file Meltano writes."""
    from_ref.run("config", "set", TAP, "start_date", "2025-10-01")
    from_ref.run("config", "set", TAP, "series_intervals", '["daily", "weekly"]')
    env = {
        "TAP_KLAVIYO_SEGMENTS_API_URL": standin.url,
        "TAP_KLAVIYO_SEGMENTS_API_KEY": standin.settings.api_key,
        "TAP_KLAVIYO_SEGMENTS_END_DATE": "2026-03-01",
    }
    standin.clear_log()
    proc = from_ref.run("invoke", f"{TAP}:plan", "--format", "json", env=env)
    via_meltano = json.loads(proc.stdout)

    path = tmp_path / "config.json"
    path.write_text(json.dumps(from_ref.dumped_config(env)))
    plan_bin = Path(sys.executable).parent / "tap-klaviyo-segments-plan"
    direct = subprocess.run(
        [str(plan_bin), "--config", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(direct.stdout)
    assert via_meltano["streams"] == expected["streams"]
    assert via_meltano["pace"] == expected["pace"]
    assert via_meltano["report_calls"] == expected["report_calls"] > 0
    intervals = via_meltano["streams"]["segment_series"]["intervals"]
    assert [p["interval"] for p in intervals] == ["daily", "weekly"]
    assert intervals[0]["calls"][0]["start"].startswith("2025-10-01")
    assert standin.report_calls() == [], "the plan made a report call"
