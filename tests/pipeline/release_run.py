"""The Release stage's own script, run by bash here as the agent would run it.

No AKS cluster and no Azure login exist here, so the commands that talk to them are stand-ins
on PATH that record each call: `az`, `kubelogin`, `make` (the pre-flight reads Blob) and
`helm`. The helm stand-in is a thin shell around the real helm: every call is first parsed by
the real Helm 3 (`helm <args> --help` fails on a flag helm doesn't know; the pipeline installs
Helm 3.17, as .tools/helm-v3 is), and `helm upgrade --install` is rendered by the real helm
given (3 or 4) as `helm template` with the same flags, so the chart's schema judges the
values exactly as it would on the cluster. Only `helm test`'s outcome and `helm history`'s
answer are chosen by the test.
"""

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.pipeline.pipeline_file import MACRO, REPO_ROOT, expand_macros

HELM_V3 = REPO_ROOT / ".tools" / "helm-v3" / "helm"
HELM_V4 = REPO_ROOT / ".tools" / "helm-v4" / "helm"

# Realistic values for the variable group's variables and the predefined ones the pipeline
# uses (what Azure DevOps substitutes for their macros).
GROUP_AND_PREDEFINED = {
    "Build.BuildId": "20241",  # a number: helm's --set would make it an integer
    "Build.SourceVersion": "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    "acrLoginServer": "aiappprod.azurecr.io",
    "aksResourceGroup": "rg-ai-app-prod",
    "aksCluster": "aks-ai-app-prod",
    "namespace": "serving",
    "storageAccountUrl": "https://aiappmodels.blob.core.windows.net",
    "workloadIdentityClientId": "0b7a2c4e-1d2f-4e8a-9c3b-5f6d7e8a9b0c",
}

# `helm upgrade` flags that `helm template` doesn't take (with how many values each has).
UPGRADE_ONLY_FLAGS = {
    "--install": 0,
    "--atomic": 0,
    "--rollback-on-failure": 0,
    "--wait": 0,
    "--wait-for-jobs": 0,
    "--create-namespace": 0,
    "--cleanup-on-fail": 0,
    "--timeout": 1,
    "--history-max": 1,
}


def macro_values(pipeline: dict) -> dict[str, str]:
    """Every macro's value: the pipeline's own variables (expanded) over the group's."""
    values = dict(GROUP_AND_PREDEFINED)
    for variable in pipeline["variables"]:
        if "name" in variable and not str(variable["value"]).startswith("$["):
            values[variable["name"]] = expand_macros(str(variable["value"]), values)
    return values


def template_args(upgrade_args: list[str]) -> list[str]:
    """`helm upgrade --install NAME CHART flags...` as `helm template NAME CHART flags...`."""
    assert upgrade_args[:2] == ["upgrade", "--install"], upgrade_args
    args, rest = ["template"], upgrade_args[1:]
    while rest:
        arg = rest.pop(0)
        name = arg.split("=", 1)[0]
        if name in UPGRADE_ONLY_FLAGS:
            if "=" not in arg:
                del rest[: UPGRADE_ONLY_FLAGS[name]]
            continue
        args.append(arg)
    return args


STAND_IN = """\
import json, os, shutil, subprocess, sys
from pathlib import Path

sys.path.insert(0, os.environ["REPO_ROOT"])
from tests.pipeline.release_run import template_args

name, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(os.environ["STAND_IN_CALLS"], "a") as calls:
    calls.write(json.dumps([sys.argv[0], *args]) + "\\n")


def option(flag, default):
    return args[args.index(flag) + 1] if flag in args else default


def writable(path):  # the job's folders; az's default, /usr/local/bin, is root's on an agent
    folders = (os.environ["HOME"], os.environ["AGENT_TEMPDIRECTORY"])
    return any(Path(path).resolve().is_relative_to(Path(f).resolve()) for f in folders)


if name == "az" and args[:2] == ["aks", "install-cli"]:
    kubectl = option("--install-location", "/usr/local/bin/kubectl")
    kubelogin = option("--kubelogin-install-location", "/usr/local/bin/kubelogin")
    for target in (kubectl, kubelogin):
        if not writable(target):
            sys.exit(f"[Errno 13] Permission denied: '{target}'")
    Path(kubelogin).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(os.environ["STAND_IN_KUBELOGIN"], kubelogin)
elif name == "helm":
    checked = subprocess.run([os.environ["HELM_FLAGS"], *args, "--help"], capture_output=True)
    if checked.returncode != 0:
        sys.exit(checked.stderr.decode())
    if args[0] == "upgrade":
        template = [os.environ["HELM_RENDER"], *template_args(args)]
        rendered = subprocess.run(template, capture_output=True)
        Path(os.environ["STAND_IN_RENDERED"]).write_bytes(rendered.stdout)
        sys.stderr.write(rendered.stderr.decode())
        sys.exit(rendered.returncode)
    if args[0] == "test":
        if "--logs" in args:
            print("POD LOGS: ai-app-test-inference")
        if os.environ["STAND_IN_TEST"] != "pass":
            sys.exit("Error: 1 error occurred:\\n\\t* pod ai-app-test-inference failed")
    if args[0] == "history":
        print(os.environ["STAND_IN_HISTORY"])
"""


@dataclass
class ReleaseRun:
    returncode: int
    output: str
    calls: list[list[str]]
    rendered: str

    def called(self, command: str, *first_args: str) -> list[list[str]]:
        """The recorded calls of one command (whatever directory it ran from)."""
        return [
            call
            for call in self.calls
            if Path(call[0]).name == command and call[1 : 1 + len(first_args)] == list(first_args)
        ]


def run_release(
    script: str,
    values: dict[str, str],
    workdir: Path,
    *,
    helm: Path,
    test_outcome: str = "pass",
    history: list[dict] | None = None,
) -> ReleaseRun:
    """Run the script (macros expanded) with the stand-ins; `helm upgrade` is rendered by
    `helm`, `helm test` passes or fails as asked, `helm history` answers `history`."""
    bin_dir, agent_temp = workdir / "bin", workdir / "agent-temp"
    bin_dir.mkdir()
    agent_temp.mkdir()
    stand_in = workdir / "stand_in.py"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    for command in ("az", "make", "helm"):
        (bin_dir / command).symlink_to(stand_in)
    kubelogin = workdir / "kubelogin-build" / "kubelogin"  # az aks install-cli copies it
    kubelogin.parent.mkdir()
    kubelogin.symlink_to(stand_in)

    bash_script = expand_macros(script, values)
    leftover = MACRO.findall(bash_script)
    assert not leftover, f"macros left in the script: {leftover}"
    (workdir / "release.sh").write_text(bash_script)
    calls, rendered = workdir / "calls.jsonl", workdir / "rendered.yaml"
    calls.touch()
    env = {
        "PATH": os.pathsep.join(
            [str(bin_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"]
        ),
        "HOME": str(workdir),
        "AGENT_TEMPDIRECTORY": str(agent_temp),
        "STAND_IN_CALLS": str(calls),
        "STAND_IN_KUBELOGIN": str(kubelogin),
        "STAND_IN_RENDERED": str(rendered),
        "REPO_ROOT": str(REPO_ROOT),
        "STAND_IN_TEST": test_outcome,
        "STAND_IN_HISTORY": json.dumps(history or []),
        "HELM_FLAGS": str(HELM_V3),
        "HELM_RENDER": str(helm),
    }
    result = subprocess.run(
        ["bash", str(workdir / "release.sh")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return ReleaseRun(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        calls=[json.loads(line) for line in calls.read_text().splitlines()],
        rendered=rendered.read_text() if rendered.exists() else "",
    )
