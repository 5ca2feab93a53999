"""The documentation site builds in strict mode: a broken link, anchor or a page left out of the nav fails."""

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_documentation_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "warehouse" / "index.html").exists()


def test_the_readme_links_only_to_pages_that_exist():
    readme = (REPOSITORY / "README.md").read_text()
    import re

    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", readme) if not t.startswith("http")]
    missing = [t for t in targets if not (REPOSITORY / t).exists()]
    assert targets and not missing, missing
