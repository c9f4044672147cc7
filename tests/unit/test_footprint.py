"""What keeps the daemon's RSS down (bench/footprint.py measures it): freed heap goes back to
the system, and `edge-agent run` imports neither disabled collectors nor the board."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from agent.core import memory

GLIBC = memory._libc() is not None


def run_python(code: str) -> list[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=60).stdout.split()


@pytest.mark.skipif(not GLIBC, reason="malloc_trim and mallopt are glibc's")
def test_release_hands_freed_heap_back_to_the_system():
    # 32 MiB in 4 KiB blocks (malloc's heap, not mmap), then a block above them, so the freed
    # range sits below the top of the heap, where free() alone never returns it
    code = """
from agent.core import memory
def rss_kib():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1])
limited = memory.limit_arenas()
blocks = [bytes(4096) for _ in range(8192)]
pin = bytes(4096)
del blocks
before = rss_kib()
released = memory.release()
print(limited, released, before - rss_kib())
"""
    limited, released, freed_kib = run_python(code)
    assert limited == "True" and released == "True"
    assert int(freed_kib) > 16 * 1024


def test_disabled_collector_families_are_not_imported():
    code = """
import sys
from pathlib import Path
from agent.config import validate
from agent.collectors.registry import FAMILIES, build_all
config = validate({"node": {"id": "n"}, "signing": {"key_file": "k"},
                   "collectors": {"host": {"enabled": False}, "posture": {"enabled": False}}}, "x")
built = [c.name for c in build_all(config, root=Path("/nonexistent"))]
print(",".join(built), *(family for family, module in FAMILIES.items() if module in sys.modules))
"""
    assert run_python(code) == ["patches", "patches"]


def test_edge_agent_commands_do_not_import_the_board():
    code = ("import sys, agent.cli; agent.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('agent.fleet.', 'agent.web'))))")
    assert run_python(code) == ["['agent.fleet.defaults']"]


def test_a_named_command_imports_only_its_own_module():
    code = ("import sys, agent.cli; agent.cli.build_parser(sys.argv[1]); "
            "print(*sorted(m for m in sys.modules if m.startswith('agent.cli.') and m != 'agent.cli.common'))")
    assert subprocess.run([sys.executable, "-c", code, "run"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.split() == ["agent.cli.run"]


def test_the_command_table_names_every_registered_command():
    from agent import cli

    subparsers = next(action for action in cli.build_parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    assert list(subparsers.choices) == list(cli.COMMANDS)
    for command, module in cli.COMMANDS.items():
        alone = next(action for action in cli.build_parser(command)._actions
                     if isinstance(action, argparse._SubParsersAction))
        assert command in alone.choices, f"{command} is registered by agent.cli.{module}? it is not"
