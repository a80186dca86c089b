"""Print one of README.md's two set-up commands: `train` or `test`.

They are the fenced bash blocks right after the markers <!-- setup:train --> and <!-- setup:test -->.
CI runs the test command through this script, and a test checks the Dockerfile uses the same ones.
"""

import pathlib
import re
import sys


def command(which, readme=None):
    text = pathlib.Path(readme or pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(rf"<!-- setup:{which} -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    if not match:
        raise SystemExit(f"README.md has no <!-- setup:{which} --> block")
    return " ".join(line.rstrip("\\").strip() for line in match.group(1).strip().splitlines())


if __name__ == "__main__":
    print(command(sys.argv[1] if len(sys.argv) > 1 else "test"))
