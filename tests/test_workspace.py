"""bench.workspace: which directories a run may use as its workdir, and the marker it leaves."""

import os
import stat
from pathlib import Path

import pytest

from bench.errors import InputError
from bench.workspace import MARKER, check_workdir, claim_workdir, system_dir_refusal


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/fusebench", "/usr/local/work", "/boot", "/proc/self", "/sys",
                                  "/dev/shm/work", "/run/work", "/var", "/var/lib/work", "/var/log", "/tmp", "/root",
                                  "/var/tmp", "/var/tmp/fusebench", "/home", "/lib/x", "/sbin"])
def test_system_directories_are_refused(path: str) -> None:
    assert "system" in system_dir_refusal(Path(path))
    with pytest.raises(InputError, match="give a directory of its own"):
        check_workdir(Path(path))


@pytest.mark.parametrize("path", ["/var/tmp/fusebench/quick", "/tmp/work", "/root/work", "/srv/bench", "/home/me/w"])
def test_directories_of_their_own_are_allowed(path: str) -> None:
    assert system_dir_refusal(Path(path)) is None


def test_a_symlink_into_a_system_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/etc")
    with pytest.raises(InputError, match="/etc is a system directory"):
        check_workdir(tmp_path / "innocent")


def test_a_new_or_empty_directory_is_claimed_and_marked(tmp_path: Path) -> None:
    for workdir in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert claim_workdir(workdir) is None
        assert (workdir / MARKER).is_file()
        assert check_workdir(workdir) == workdir.resolve()  # marked: used again, whatever it holds
        (workdir / "source").mkdir(exist_ok=True)
        (workdir / "anything").write_text("x")
        assert claim_workdir(workdir) is None


def test_a_directory_fusebench_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "source").mkdir()
    with pytest.raises(InputError, match=r"not made by fusebench .* holds notes\.txt: .*empty or new directory"):
        claim_workdir(tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_a_marker_that_is_a_symlink_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / MARKER).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="not made by fusebench"):
        check_workdir(tmp_path)


def test_an_unmarked_workdir_of_an_earlier_fusebench_is_adopted(tmp_path: Path) -> None:
    for name in ("source", "scratch", "mnt-fuse", "mnt-passthrough"):
        (tmp_path / name).mkdir()
    for name in (".lock", "fuse.server.log", "fuse.stats.json"):
        (tmp_path / name).write_text("")
    note = claim_workdir(tmp_path)
    assert note and "made by an earlier fusebench" in note and (tmp_path / MARKER).is_file()
    assert claim_workdir(tmp_path) is None


def test_a_file_is_not_a_workdir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a directory"):
        check_workdir(tmp_path / "file")


def test_a_directory_others_could_change_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError, match=rf"{shared} \(owner uid {os.geteuid()}, mode 0777\).*chmod go-w \(or \+t\) {shared}"):
        check_workdir(shared / "work")
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot replace what root made in it
    assert claim_workdir(shared / "work") is None
    (shared / "work").chmod(0o775)
    with pytest.raises(InputError, match=rf"mode 0775\).*chmod go-w {shared / 'work'}"):
        check_workdir(shared / "work")


@pytest.mark.integration
def test_a_directory_another_user_owns_is_refused(tmp_path: Path, require_root: None) -> None:
    """(Integration only because giving a directory away needs CAP_CHOWN.)"""
    (tmp_path / "theirs").mkdir(mode=0o755)
    os.chown(tmp_path / "theirs", 4321, 4321)
    with pytest.raises(InputError, match=rf"owner uid 4321.*chown root {tmp_path / 'theirs'}"):
        check_workdir(tmp_path / "theirs" / "work")


def test_a_new_workdir_is_made_0755_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        claim_workdir(tmp_path / "parent" / "work")
    finally:
        os.umask(old)
    assert {stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("parent", "parent/work")} == {0o755}


@pytest.mark.parametrize("plant", ["source_link", "scratch_file", "mnt_link", "log_link"])
def test_an_unmarked_workdir_with_planted_entries_is_refused(tmp_path: Path, plant: str) -> None:
    {"source_link": lambda: (tmp_path / "source").symlink_to("/etc"),
     "scratch_file": lambda: (tmp_path / "scratch").write_text(""),
     "mnt_link": lambda: (tmp_path / "mnt-fuse").symlink_to("/usr"),
     "log_link": lambda: (tmp_path / "fuse.server.log").symlink_to("/etc/shadow")}[plant]()
    with pytest.raises(InputError, match=rf"{tmp_path} was not made by fusebench .* a symlink or not what fusebench"):
        claim_workdir(tmp_path)
    assert not (tmp_path / MARKER).exists()
