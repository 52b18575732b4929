"""Runs last (conftest orders it so): every response the suite got from a sluice server
was checked against docs/openapi.json as it arrived (openapi_check.py). This fails
listing each mismatch once, with how often it happened and its first occurrence: a
route or status the document lacks, a Content-Type it does not list, a required header
missing, a header or body that does not fit its schema. It also writes
build/openapi-coverage.txt: each documented response and how often the suite saw it.

Run it together with targeted tests to check what they saw, e.g.
  pytest tests/api/test_07_documents.py tests/api/test_zz_openapi_drift.py"""
import os

import pytest

import openapi_check
from conftest import ROOT


def test_every_response_matches_the_document():
    ck = openapi_check.CHECKER
    assert ck is not None, "conftest did not install the response checker"
    build = os.path.join(ROOT, "build")
    if os.path.isdir(build):
        with open(os.path.join(build, "openapi-coverage.txt"), "w") as f:
            f.write("\n".join(ck.coverage()) + "\n")
    problems = ck.report()
    if problems:
        pytest.fail("%d of the suite's %d responses disagree with docs/openapi.json (%d kinds):\n%s" % (
            sum(c for c, _ in ck.problems.values()), ck.responses, len(problems), "\n".join(problems)),
            pytrace=False)
