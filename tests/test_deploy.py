"""The deployment recipes in config/deploy/ parse, and each treats exit 3 (lock held) and
4 (nothing to export) as no failure and keeps a --report. No container engine, systemd or
cron runs here, so their syntax and wiring are what is checked."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "config" / "deploy"
README = (DEPLOY.parents[1] / "README.md").read_text()


def test_every_recipe_is_documented_in_the_readme() -> None:
    recipes = sorted(p.name for p in DEPLOY.iterdir())
    assert recipes == [
        "cronjob.yaml",
        "ess-export.cron",
        "ess-export@.service",
        "ess-export@.timer",
        "github-actions.yml",
    ]
    for name in recipes:
        assert f"config/deploy/{name}" in README, name


def test_the_crontab_runs_one_line_per_site() -> None:
    lines = [
        line
        for line in (DEPLOY / "ess-export.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    sites = []
    for line in lines:
        minute, hour, day, month, weekday, command = line.split(maxsplit=5)
        assert all(re.fullmatch(r"[0-9*/,-]+", f) for f in (minute, hour, day, month, weekday))
        run = shlex.split(command.split("&&")[-1].split(";")[0])
        assert run[:2] == ["ess-export", "run"] and "--exit-nothing" in run and "--report" in run
        assert "[ $rc -eq 3 ] || [ $rc -eq 4 ] || exit $rc" in command
        sites.append(run[run.index("--site") + 1])
    assert sites == ["1", "2"]


def test_the_systemd_units_parse_and_treat_3_and_4_as_success() -> None:
    service = configparser.ConfigParser(strict=True, interpolation=None)
    service.optionxform = str  # systemd keys are case-sensitive
    service.read(DEPLOY / "ess-export@.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["SuccessExitStatus"] == "3 4"
    command = shlex.split(service["Service"]["ExecStart"])
    assert command[1:3] == ["run", "--config"] and command[command.index("--site") + 1] == "%i"
    assert "--exit-nothing" in command and "--report" in command
    timer = configparser.ConfigParser(strict=True, interpolation=None)
    timer.optionxform = str
    timer.read(DEPLOY / "ess-export@.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* *:17:00"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_kubernetes_cronjobs_are_one_per_site() -> None:
    jobs = list(yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()))
    assert [job["metadata"]["name"] for job in jobs] == ["ess-export-site-1", "ess-export-site-2"]
    for site, job in zip(("1", "2"), jobs, strict=True):
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        spec = job["spec"]["jobTemplate"]["spec"]
        (rule,) = spec["podFailurePolicy"]["rules"]
        assert (rule["action"], rule["onExitCodes"]["values"]) == ("FailJob", [2])
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
        (container,) = pod["containers"]
        (script,) = container["args"]
        assert f"--site {site} --exit-nothing --report /tmp/report.json" in script
        assert "if [ $rc -eq 3 ] || [ $rc -eq 4 ]; then exit 0; fi; exit $rc" in script


def test_the_ci_workflow_is_scheduled_with_a_job_per_site() -> None:
    workflow = yaml.safe_load((DEPLOY / "github-actions.yml").read_text())
    assert workflow[True]["schedule"] == [{"cron": "17 * * * *"}]  # YAML 1.1 reads `on` as True
    job = workflow["jobs"]["export"]
    assert job["strategy"]["matrix"]["site"] == ["1", "2"]
    script = next(step["run"] for step in job["steps"] if "ess-export run" in step.get("run", ""))
    assert "--exit-nothing --report report-${{ matrix.site }}.json" in script
    assert "if [ $rc -eq 3 ] || [ $rc -eq 4 ]; then exit 0; fi" in script
    upload = job["steps"][-1]
    assert (upload["if"], upload["uses"]) == ("always()", "actions/upload-artifact@v4")
