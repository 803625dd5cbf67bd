"""Check the installed dependency set (.venv) for known vulnerabilities.

1. pip-audit (installed into its own venv, .audit-venv, so it never changes the project's) against
   .venv's site-packages, using PyPI's vulnerability data (/pypi/<name>/<version>/json).
2. Where that per-version endpoint cannot be reached (a registry mirror that serves only
   /pypi/<name>/json), pip-audit skips every package; this script then says so plainly instead of
   "no known vulnerabilities", and falls back to each project's JSON: the advisories PyPI lists
   for the project's latest release (which apply to our pin when the pin is that release), and
   which pins are behind the latest release.

Exit status: 1 when a vulnerability is found, 0 otherwise. Usage: .venv/bin/python scripts/audit.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
AUDIT_VENV = REPO_ROOT / ".audit-venv"
PIP_AUDIT = "pip-audit==2.10.1"


def site_packages() -> Path:
    """.venv's site-packages directory."""
    return next((REPO_ROOT / ".venv" / "lib").glob("python3*/site-packages"))


def run_pip_audit() -> dict:
    """pip-audit's JSON report of .venv's packages."""
    if not (AUDIT_VENV / "bin" / "pip-audit").exists():
        subprocess.run([sys.executable, "-m", "venv", str(AUDIT_VENV)], check=True)
        subprocess.run([str(AUDIT_VENV / "bin" / "pip"), "install", "-q", PIP_AUDIT], check=True)
    done = subprocess.run(
        [str(AUDIT_VENV / "bin" / "pip-audit"), "--path", str(site_packages()), "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout or "{}")


def project_json(name: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as response:
            return json.load(response)
    except OSError:
        return None


def main() -> int:
    report = run_pip_audit()
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = len(dependencies) - len(skipped)
    print(f"pip-audit: {len(dependencies)} distributions, {audited} audited, {len(skipped)} skipped, {len(vulnerable)} vulnerable")
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            print(
                f"  VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in "
                f"{', '.join(vuln.get('fix_versions', [])) or '?'})"
            )
    if skipped:
        print(f"  NOT AUDITED by pip-audit: {len(skipped)} (first reason: {skipped[0]['skip_reason']})")
        print("fallback: each project's JSON (advisories of its latest release; pins behind the latest)")
        installed = {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions(path=[str(site_packages())])}
        behind, unreachable = [], []
        for name, version in sorted(installed.items()):
            data = project_json(name)
            if data is None:
                unreachable.append(name)
                continue
            latest = data["info"]["version"]
            if version == latest and data.get("vulnerabilities"):
                vulnerable.append({"name": name})
                for vuln in data["vulnerabilities"]:
                    print(f"  VULNERABLE {name} {version}: {vuln.get('id')} (fixed in {', '.join(vuln.get('fixed_in') or []) or '?'})")
            elif version != latest:
                behind.append(f"{name} {version} (latest {latest})")
        print(f"  {len(installed) - len(behind) - len(unreachable)} pins are their project's latest release, with no advisory listed")
        print(f"  {len(behind)} pins are behind their latest release (their advisories cannot be read here): {'; '.join(behind)}")
        if unreachable:
            print(f"  {len(unreachable)} projects could not be looked up: {', '.join(unreachable)}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
