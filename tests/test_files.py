import stat

import pytest

from sarlib.utils import files
from sarlib.utils.files import atomic_write, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")

    def crash(tmp):
        open(tmp, "w").write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_written_files_get_umask_permissions_not_owner_only(tmp_path):
    atomic_write_text(tmp_path / "a.csv", "x")
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o666 & ~files._UMASK
