"""Benchmark `shipyard validate` against `check-jsonschema` on a large generated repository.

Why this exists: `shipyard validate` is meant to run in CI and pre-commit hooks on
repositories with thousands of agents, and it does more than a plain schema check (it
locates every problem by line and column, reads prompt files and catches duplicate
names). Our goal is that it nevertheless stays at least 3x (aiming for 10x) faster than
the obvious alternative, `check-jsonschema` with the published schema. This script
measures both on the same generated manifests, in the same run, so the claim can be
checked on any machine:

    python bench/validate.py [--count 10000] [--repeat 3] [--workdir DIR] [--keep] [--json]

Before timing, a tiny second repository holding one manifest with an out-of-range
temperature makes sure both tools reject it, i.e. that they enforce the same schema.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
SCHEMA = PROJECT / "schemas" / "agent.v1alpha1.schema.json"
GOAL = 3.0
AIM = 10.0
# Room left in the argument/environment area beyond what we count, as xargs does.
ARGV_HEADROOM = 4096

TEAMS = ("support", "platform", "growth", "research", "billing", "search", "infra", "sales")
TIERS = ("frontline", "backoffice", "batch", "internal")
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o", "o3-mini"),
    "anthropic": ("claude-sonnet-4", "claude-haiku-3.5"),
    "google": ("gemini-2.0-flash",),
    "ollama": ("llama3.1:8b", "qwen2.5:14b"),
    "fake": ("fake-small", "fake-large"),
}
WORDS = (
    *("customer", "order", "shipping", "refund", "invoice", "ticket", "account", "plan"),
    *("answer", "politely", "briefly", "escalate", "summarize", "classify", "route", "queue"),
    *("priority", "language", "tone", "policy", "never", "always", "quote", "cite", "source"),
    *("document", "search", "knowledge", "base", "handoff", "human", "confirm", "detail"),
)
TOOLS = ("lookup_customer", "search_docs", "create_ticket", "tickets", "billing", "calendar")


@dataclass
class ToolResult:
    """Timings of one tool over the whole repository."""

    tool: str
    command: list[str]
    files: int
    invocations: int
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def per_file_ms(self) -> float:
        return self.median / self.files * 1000


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    own_tempdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="shipyard-bench-")) if own_tempdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    repo, invalid_repo = workdir / "repo", workdir / "invalid-repo"
    for path in (repo, invalid_repo):
        if path.exists():
            raise SystemExit(f"{path} already exists; pick an empty --workdir")
    try:
        return _run(args, repo, invalid_repo)
    finally:
        if args.keep:
            _log(f"kept {workdir}")
        elif own_tempdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for path in (repo, invalid_repo):
                shutil.rmtree(path, ignore_errors=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10000, help="manifests to generate")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool")
    parser.add_argument("--seed", type=int, default=0, help="seed for generated content")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be at least 1")
    return args


def _run(args: argparse.Namespace, repo: Path, invalid_repo: Path) -> int:
    shipyard, check_jsonschema = _executable("shipyard"), _executable("check-jsonschema")
    started = time.perf_counter()
    files = generate(repo, args.count, args.seed)
    _log(f"generated {len(files)} manifests in {time.perf_counter() - started:.1f}s: {repo}")

    check_same_schema(repo, invalid_repo, files[0], shipyard, check_jsonschema)
    _log("correctness: both tools reject temperature 3.5")

    shipyard_cmd = [shipyard, "validate", str(repo), "-o", "json"]
    cjs_base = [check_jsonschema, "--schemafile", str(SCHEMA)]
    batches = _batches(cjs_base, files)
    results = [
        ToolResult("shipyard", shipyard_cmd, len(files), 1),
        ToolResult("check-jsonschema", [*cjs_base, "<files>"], len(files), len(batches)),
    ]
    for round_ in range(args.repeat):
        order = results if round_ % 2 == 0 else results[::-1]
        for result in order:
            if result.tool == "shipyard":
                seconds = _time_shipyard(shipyard_cmd, repo, len(files))
            else:
                seconds = _time_check_jsonschema(batches, repo)
            result.runs.append(seconds)
            _log(f"round {round_ + 1}/{args.repeat}: {result.tool} {seconds:.2f}s")

    report = _report(results, args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(results, report)
    return 0


# --- repository generation -------------------------------------------------------------


def generate(repo: Path, count: int, seed: int) -> list[str]:
    """Write `count` valid manifests and their prompt files; return repo-relative paths."""
    rng = random.Random(seed)
    (repo / "agents").mkdir(parents=True)
    (repo / "prompts").mkdir()
    width = max(5, len(str(count)))
    files: list[str] = []
    for index in range(1, count + 1):
        name = f"agent-{index:0{width}d}"
        prompt = f"prompts/{name}.md"
        (repo / prompt).write_text(_prompt_text(rng, name), encoding="utf-8")
        manifest = yaml.safe_dump(_manifest(rng, name, prompt), sort_keys=False, width=100)
        relative = f"agents/{name}.yaml"
        (repo / relative).write_text(manifest, encoding="utf-8")
        files.append(relative)
    return files


def _manifest(rng: random.Random, name: str, prompt: str) -> dict[str, Any]:
    labels = {"team": rng.choice(TEAMS), "app.kubernetes.io/part-of": "shipyard-bench"}
    if rng.random() < 0.6:
        labels["tier"] = rng.choice(TIERS)
    provider = rng.choice(sorted(MODELS))
    parameters: dict[str, Any] = {
        "temperature": round(rng.uniform(0, 1.5), 2),
        "maxTokens": rng.choice((256, 512, 1024, 4096)),
    }
    if rng.random() < 0.3:
        parameters["topP"] = round(rng.uniform(0.1, 1.0), 2)
    if rng.random() < 0.2:
        parameters["stop"] = ["\n\nHuman:", "END"]
    if rng.random() < 0.2:
        parameters["seed"] = rng.randrange(2**31)
    version = f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    spec: dict[str, Any] = {
        "image": f"ghcr.io/acme/{name}:{version}",
        "run": {"command": ["python3", "agent/server.py", "--name", name]},
        "env": [
            {"name": "LOG_LEVEL", "value": rng.choice(("debug", "info", "warning"))},
            *(
                {"name": f"FEATURE_{word.upper()}_{i}", "value": str(rng.randint(0, 1))}
                for i, word in enumerate(rng.sample(WORDS, rng.randint(0, 4)))
            ),
        ],
        "secrets": [
            {
                "env": f"{provider.upper()}_API_KEY",
                "secretRef": {"name": provider, "key": "api-key"},
            }
        ],
        "resources": {
            "requests": {"cpu": f"{rng.choice((50, 100, 250, 500))}m", "memory": "128Mi"},
            "limits": {"memory": f"{rng.choice((256, 512, 1024))}Mi"},
        },
        "healthCheck": {
            "path": "/healthz",
            "periodSeconds": rng.randint(1, 10),
            "failureThreshold": rng.randint(1, 5),
        },
        "model": {
            "provider": provider,
            "name": rng.choice(MODELS[provider]),
            "parameters": parameters,
        },
        "prompt": {"file": prompt},
    }
    tools = [_tool(rng, tool) for tool in rng.sample(TOOLS, rng.randint(0, 4))]
    if tools:
        spec["tools"] = tools
    if rng.random() < 0.5:
        spec["preview"] = {"enabled": True, "ttl": rng.choice(("24h", "72h", "1h30m"))}
    if rng.random() < 0.3:
        spec["rollout"] = {"progressDeadlineSeconds": rng.choice((60, 120, 300))}
    description = " ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize() + "."
    return {
        "apiVersion": "shipyard.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "description": description, "labels": labels},
        "spec": spec,
    }


def _tool(rng: random.Random, name: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "description": f"{name.replace('_', ' ')} for the agent."}
    if rng.random() < 0.5:
        tool["url"] = f"https://{name.replace('_', '-')}.example.internal/api"
    else:
        tool["mcp"] = {"server": name.replace("_", "-")}
    return tool


def _prompt_text(rng: random.Random, name: str) -> str:
    lines = [f"# {name}", "", "You are a helpful assistant for Acme Corp."]
    size = rng.randint(300, 600)
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(" ".join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize() + ".")
    return "\n".join(lines) + "\n"


# --- correctness check -----------------------------------------------------------------


def check_same_schema(
    repo: Path, invalid_repo: Path, manifest: str, shipyard: str, check_jsonschema: str
) -> None:
    """Copy one manifest with temperature 3.5 into a tiny repo; both tools must reject it."""
    document = yaml.safe_load((repo / manifest).read_text(encoding="utf-8"))
    document["spec"]["model"]["parameters"]["temperature"] = 3.5
    (invalid_repo / "agents").mkdir(parents=True)
    (invalid_repo / manifest).write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    prompt = document["spec"]["prompt"]["file"]
    (invalid_repo / prompt).parent.mkdir(parents=True)
    shutil.copyfile(repo / prompt, invalid_repo / prompt)

    ran = subprocess.run(
        [shipyard, "validate", str(invalid_repo), "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1, f"shipyard accepted temperature 3.5: {ran.stdout}{ran.stderr}"
    fields = [problem["field"] for problem in json.loads(ran.stdout)["problems"]]
    assert fields == ["spec.model.parameters.temperature"], f"unexpected problems: {fields}"

    ran = subprocess.run(
        [check_jsonschema, "--schemafile", str(SCHEMA), manifest],
        cwd=invalid_repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1, f"check-jsonschema accepted 3.5: {ran.stdout}{ran.stderr}"
    assert "3.5" in ran.stdout + ran.stderr, f"unexpected failure: {ran.stdout}{ran.stderr}"


# --- timing ----------------------------------------------------------------------------


def _time_shipyard(command: list[str], repo: Path, count: int) -> float:
    started = time.perf_counter()
    ran = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    assert ran.returncode == 0, f"shipyard validate failed:\n{ran.stdout[-2000:]}{ran.stderr}"
    report = json.loads(ran.stdout)
    assert report["valid"], report["problems"][:5]
    assert report["files"] == count, f"{report['files']} files, expected {count}"
    assert len(report["agents"]) == count, f"{len(report['agents'])} agents, expected {count}"
    return seconds


def _time_check_jsonschema(batches: list[list[str]], repo: Path) -> float:
    total = 0.0
    for command in batches:
        started = time.perf_counter()
        ran = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
        total += time.perf_counter() - started
        assert ran.returncode == 0, f"check-jsonschema failed:\n{ran.stdout[-2000:]}{ran.stderr}"
    return total


def _batches(base: list[str], files: list[str]) -> list[list[str]]:
    """Split `base + files` into as few commands as fit the OS argument limit, like xargs."""
    try:
        arg_max = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        arg_max = 128 * 1024
    environment = sum(len(key) + len(value) + 2 + 8 for key, value in os.environ.items())
    budget = arg_max - environment - ARGV_HEADROOM

    def cost(argument: str) -> int:
        return len(os.fsencode(argument)) + 1 + 8  # the string, its NUL, its pointer

    fixed = sum(cost(argument) for argument in base)
    batches: list[list[str]] = []
    current: list[str] = []
    used = fixed
    for file in files:
        if current and used + cost(file) > budget:
            batches.append([*base, *current])
            current, used = [], fixed
        current.append(file)
        used += cost(file)
    batches.append([*base, *current])
    return batches


def _executable(name: str) -> str:
    """The console script next to this interpreter, skipping version-manager shims
    (a pyenv shim adds a shell script and a re-exec to every call)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (pip install -e '.[test]')")
    return found


# --- reporting -------------------------------------------------------------------------


def _report(results: list[ToolResult], args: argparse.Namespace) -> dict[str, Any]:
    by_tool = {result.tool: result for result in results}
    ratio = by_tool["check-jsonschema"].median / by_tool["shipyard"].median
    return {
        "count": args.count,
        "repeat": args.repeat,
        "seed": args.seed,
        "python": sys.version.split()[0],
        "tools": [
            {**asdict(result), "median_s": result.median, "per_file_ms": result.per_file_ms}
            for result in results
        ],
        "ratio": ratio,
        "goal": GOAL,
        "aim": AIM,
        "goal_met": ratio >= GOAL,
        "aim_met": ratio >= AIM,
        "correctness_check": "passed",
    }


def _print_table(results: list[ToolResult], report: dict[str, Any]) -> None:
    header = f"{'tool':<18}{'files':>8}{'calls':>7}{'median s':>11}{'per-file ms':>13}"
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.tool:<18}{result.files:>8}{result.invocations:>7}"
            f"{result.median:>11.3f}{result.per_file_ms:>13.3f}"
        )
    ratio = report["ratio"]
    verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
    print(f"\nratio check-jsonschema / shipyard = {ratio:.2f}: shipyard is {verdict}")
    met = "met" if report["goal_met"] else "NOT met"
    aim = "reached" if report["aim_met"] else "not reached"
    print(f"goal >= {GOAL:g}x: {met}; aim {AIM:g}x: {aim}")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
