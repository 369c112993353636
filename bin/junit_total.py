"""Print the closing lines of bin/test from the suites' JUnit XML files: the slowest tests over all
suites, each suite's time, and one total line; exit 1 if any failed or nothing ran."""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SLOWEST = 10
totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
cases, suite_times = [], []
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()  # noqa: S314 - our own pytest output, not untrusted input
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, 0))
        suite_times.append((Path(path).stem.removeprefix("junit-"), float(suite.get("time", 0))))
        for case in suite.iter("testcase"):
            cases.append((float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}"))
print(f"slowest {SLOWEST} tests (all suites):")
for seconds, name in sorted(cases, reverse=True)[:SLOWEST]:
    print(f"  {seconds:7.1f} s  {name}")
print("suite times: " + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in suite_times))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
sys.exit(1 if failed or totals["tests"] == 0 else 0)
