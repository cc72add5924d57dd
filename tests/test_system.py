"""bench.system: the huge-page reservation for `buffers: hugepages` (root: it writes vm.nr_hugepages)."""

from __future__ import annotations

import pytest

from bench import system


@pytest.mark.integration
def test_hugepages_are_added_for_the_body_and_given_back(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    wanted = system.free_hugepages() + 3
    with system.hugepages(wanted):
        assert system.free_hugepages() >= wanted
        assert int(system.NR_HUGEPAGES.read_text()) == before + 3
    assert int(system.NR_HUGEPAGES.read_text()) == before


@pytest.mark.integration
def test_pages_already_free_change_nothing(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    with system.hugepages(0):
        assert int(system.NR_HUGEPAGES.read_text()) == before


@pytest.mark.integration
def test_more_than_memory_holds_is_a_clear_error_and_changes_nothing(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    with pytest.raises(system.HugePagesError, match=r"needs 10000000 free 2 MiB huge pages; the kernel found only \d+"):
        with system.hugepages(10_000_000):  # 20 TB
            pass
    assert int(system.NR_HUGEPAGES.read_text()) == before
