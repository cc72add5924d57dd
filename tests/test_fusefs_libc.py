"""bench.fusefs.libc: the per-architecture syscall table, checked against the kernel's headers
as installed here (linux-libc-dev), for every architecture without needing its CPU."""

from __future__ import annotations

import ast
import errno
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import tracing
from bench.fusefs import aio, libc

REPO = Path(__file__).resolve().parent.parent

# Where each architecture's syscall numbers are defined, as uapi headers install them (the
# architectures of the asm-generic table, riscv64 and loongarch64 among them, share one file).
HEADERS: dict[str, tuple[str, ...]] = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/asm-generic/unistd.h",),
}


def header_numbers(text: str) -> dict[str, int]:
    """`__NR_name` -> number from a unistd header, with asm-generic's 64-bit `__NR3264_` aliases
    resolved; a name defined twice with different numbers is an error."""
    raw: dict[str, str] = {}
    for name, value in re.findall(r"^#define\s+(__NR(?:3264)?_\w+)\s+(\w+)\s*$", text, re.M):
        if raw.setdefault(name, value) != value:
            raise AssertionError(f"{name} is defined as {raw[name]} and {value}")
    numbers = {}
    for name, value in raw.items():
        if name.startswith("__NR_"):
            value = raw.get(value, value)
            if value.isdigit():
                numbers[name.removeprefix("__NR_")] = int(value)
    return numbers


def installed_numbers(arch: str) -> dict[str, int]:
    """The numbers of `arch` from the first of its headers that is installed (else skip)."""
    if arch not in HEADERS:
        raise AssertionError(f"no header known for {arch}: add where its syscall numbers come from to HEADERS")
    for path in map(Path, HEADERS[arch]):
        if path.is_file():
            return header_numbers(path.read_text())
    pytest.skip(f"no header for {arch} installed ({', '.join(HEADERS[arch])}; Debian: linux-libc-dev)")


@pytest.mark.parametrize("arch", sorted(libc.SYSCALLS))
def test_the_table_matches_the_kernel_headers(arch: str) -> None:
    numbers = installed_numbers(arch)
    assert {name: numbers.get(name) for name in libc.SYSCALLS[arch]} == libc.SYSCALLS[arch]


def test_every_architecture_knows_the_same_syscalls() -> None:
    names = {arch: set(table) for arch, table in libc.SYSCALLS.items()}
    assert len({frozenset(n) for n in names.values()}) == 1, names


def test_header_numbers_resolves_asm_generic_aliases() -> None:
    text = "#define __NR3264_fcntl 25\n#define __NR_fcntl __NR3264_fcntl\n#define __NR_bpf 280\n"
    assert header_numbers(text) == {"fcntl": 25, "bpf": 280}


def syscall_calls() -> list[tuple[str, ast.Call]]:
    """Every call in bench/ of a function whose name ends in `syscall` or is `syscall_number`."""
    calls = []
    for path in (REPO / "bench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name.endswith("syscall") or name == "syscall_number":
                    calls.append((f"{path.relative_to(REPO)}:{node.lineno}", node))
    return calls


def test_no_raw_syscall_number_outside_the_table() -> None:
    literal = [where for where, call in syscall_calls()
               if isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, int)]
    assert not literal, f"syscall numbers belong in bench.fusefs.libc.SYSCALLS: {literal}"


def test_every_syscall_called_by_name_is_in_every_table() -> None:
    names = {call.args[0].value for _, call in syscall_calls()
             if isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)}
    assert names >= {"bpf", "perf_event_open", "io_setup"}
    for arch, table in libc.SYSCALLS.items():
        assert names <= table.keys(), f"{arch} lacks {sorted(names - table.keys())}"


def test_this_process_uses_its_own_numbers() -> None:
    assert libc.architecture() in libc.SYSCALLS
    assert libc.syscall_number("bpf") == libc.SYSCALLS[libc.architecture()]["bpf"]


@pytest.fixture
def unknown_cpu(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(libc.platform, "machine", lambda: "riscv64")
    return "riscv64"


def test_an_unknown_architecture_is_refused_by_name(unknown_cpu: str) -> None:
    with pytest.raises(libc.UnknownSyscall) as caught:
        libc.syscall("bpf", 0, 0, 0)
    assert caught.value.errno == errno.ENOSYS
    assert "bpf" in str(caught.value) and unknown_cpu in str(caught.value) and "x86_64" in str(caught.value)
    with pytest.raises(libc.UnknownSyscall, match=unknown_cpu):
        aio.Batch(4)


def test_the_tracer_names_the_architecture(unknown_cpu: str) -> None:
    with pytest.raises(libc.UnknownSyscall) as caught:
        libc.syscall_number("perf_event_open")
    refusal = tracing._refusal(caught.value)
    assert unknown_cpu in str(refusal) and "kernel" not in str(refusal)


def test_a_32_bit_process_is_not_taken_for_a_64_bit_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libc.ctypes, "sizeof", lambda _: 4)
    assert libc.architecture() == f"{libc.platform.machine()}/32-bit"
    with pytest.raises(libc.UnknownSyscall, match="32-bit"):
        libc.syscall_number("io_setup")


def test_modules_import_on_an_unknown_architecture() -> None:
    code = ("import platform; platform.machine = lambda: 'riscv64'\n"
            "import bench.cli, bench.tracing, bench.doctor, bench.fusefs.server, bench.fusefs.aio")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
