"""Issue #12: the dependency floors in pyproject.toml exclude releases with known advisories.

The advisory table is data from the public advisories (GitHub Advisory Database / NVD ids);
`.ci/audit` runs pip-audit where it can reach the advisory database and says SKIPPED where it
cannot, so these floors are the protection that always holds."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# package -> (first safe version, the advisories below it)
ADVISORIES = {
    "flask": ("3.1.1", "CVE-2023-30861 (<2.3.2), CVE-2025-47278 (3.1.0)"),
    "werkzeug": ("3.1.4", "CVE-2024-34069 (<3.0.3), CVE-2024-49766/49767 (<3.0.6), CVE-2025-66221 (<3.1.4)"),
    "jinja2": ("3.1.6", "CVE-2024-56201/56326 (<3.1.5), CVE-2025-27516 (<3.1.6)"),
    "requests": ("2.32.4", "CVE-2023-32681 (<2.31), CVE-2024-35195 (<2.32.0), CVE-2024-47081 (<2.32.4)"),
    "urllib3": ("2.6.3", "CVE-2024-37891 (<2.2.2), CVE-2025-50181/50182 (<2.5.0), "
                         "CVE-2025-66418/66471 (<2.6.0), CVE-2026-21441 (<2.6.3)"),
    "cryptography": ("44.0.1", "CVE-2023-50782 (<42.0.0), CVE-2024-26130 (<42.0.4), CVE-2024-12797 (<44.0.1)"),
    "pyjwt": ("2.10.1", "CVE-2022-29217 (<2.4.0), CVE-2024-53861 (2.10.0)"),
    "gunicorn": ("23.0.0", "CVE-2024-1135 (<22.0.0), CVE-2024-6827 (<23.0.0)"),
    "oauthlib": ("3.2.2", "CVE-2022-36087 (<3.2.1)"),
    "redis": ("5.0.1", "CVE-2023-28858/28859 (<4.5.4)"),
    "pydantic": ("2.4", "CVE-2024-3772 (<2.4.0)"),
    "idna": ("3.7", "CVE-2024-3651 (<3.7)"),
    "certifi": ("2024.7.4", "CVE-2024-39689 (<2024.07.04)"),
    "babel": ("2.9.1", "CVE-2021-42771 (<2.9.1)"),
    "aiosmtpd": ("1.4.6", "CVE-2024-27305 (<1.4.5), CVE-2024-34083 (<1.4.6)"),
    "setuptools": ("78.1.1", "CVE-2024-6345 (<70.0.0), CVE-2025-47273 (<78.1.1)"),
}


def _floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"],
                    *project["project"]["optional-dependencies"]["dev"],
                    *project["build-system"]["requires"]]
    floors: dict[str, Version] = {}
    for text in requirements:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors[requirement.name.lower()] = Version(spec.version)
    return floors


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_the_floor_is_past_every_known_advisory(package: str) -> None:
    safe, advisories = ADVISORIES[package]
    floor = _floors().get(package)
    assert floor is not None, f"{package} has no >= floor in pyproject.toml ({advisories})"
    assert floor >= Version(safe), f"{package}>={floor} admits {advisories}"
