"""Parse response bytes with node's JSON.parse: a strict, non-Python JSON parser (RFC 8259),
the one a browser or a JavaScript client uses. Python's json module accepts NaN and
Infinity literals, so it can't be the judge of whether a body is JSON."""

import base64
import shutil
import subprocess

import pytest

# Each stdin line is one body, "b" + base64 (so an empty body is a line too); each stdout
# line is "ok" or the parser's error.
PARSE_LINES = """
const lines = require("fs").readFileSync(0, "utf8").split("\\n").filter(Boolean);
for (const line of lines) {
  try { JSON.parse(Buffer.from(line.slice(1), "base64").toString("utf8")); console.log("ok"); }
  catch (error) { console.log(error.message); }
}
"""


def node_parse_errors(*bodies: bytes) -> list[str | None]:
    """For each body, None if node's JSON.parse reads it, else the parser's message."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make setup installs it)")
    result = subprocess.run(
        [node, "-e", PARSE_LINES],
        input="".join("b" + base64.b64encode(body).decode() + "\n" for body in bodies),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    answers = result.stdout.splitlines()
    assert len(answers) == len(bodies), result.stdout + result.stderr
    return [None if answer == "ok" else answer for answer in answers]
