"""The version matrix runs the SDK it claims to run."""

import os

import anthropic


def test_installed_sdk_is_the_one_the_session_asked_for() -> None:
    expected = os.environ.get("BEDROCK_OTEL_EXPECT_ANTHROPIC")
    if expected:  # set by noxfile.py; a plain `pytest` run tests whatever is installed
        assert anthropic.__version__ == expected


def test_python_is_the_one_the_session_asked_for() -> None:
    import platform

    expected = os.environ.get("BEDROCK_OTEL_EXPECT_PYTHON")
    if expected:
        assert platform.python_version().startswith(expected + ".")


def test_readme_and_classifiers_state_what_the_matrix_tests() -> None:
    """The README's Supported table and the package classifiers say what support.py (the CI matrix) runs."""
    import re
    from pathlib import Path

    from bedrock_otel.support import SUPPORTED_ANTHROPIC, SUPPORTED_PYTHONS, TESTED_ANTHROPIC, TESTED_PYTHONS

    root = Path(__file__).parent.parent
    readme = root / "README.md"
    section = readme.read_text().split("## Supported\n", 1)[1].split("\n## ", 1)[0]
    sdk_row, python_row = (next(line for line in section.splitlines() if line.startswith(f"| {what} "))
                           for what in ("anthropic SDK", "Python"))
    assert f"`{SUPPORTED_ANTHROPIC}`" in sdk_row
    listed = re.findall(r"\d+\.\d+\.\d+", sdk_row.split("|")[3])
    assert listed == list(TESTED_ANTHROPIC)
    assert python_row.split("|")[2].strip() == ", ".join(SUPPORTED_PYTHONS)
    for python, sdks in TESTED_PYTHONS.items():
        assert all(sdk in python_row for sdk in sdks) and python in python_row
    classifiers = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', (root / "pyproject.toml").read_text())
    assert tuple(classifiers) == SUPPORTED_PYTHONS
