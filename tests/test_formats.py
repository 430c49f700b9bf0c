"""Logs written in format 1 (one hash chain for the whole log) stay readable and verifiable in place.

`tests/data/format1` was written by the library before tracts had chains of
their own: two tracts, `alpha` and `beta`, with the whole log's chain head and
the compiled contexts as that library served them (`expected.json`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from events import FORMAT_VERSION, LOG_FILE, verify
from tract import ChainHead, LogFormatError, Tract

FIXTURE = Path(__file__).parent / "data" / "format1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def old_log(tmp_path: Path) -> Path:
    directory = tmp_path / "old"
    directory.mkdir()
    shutil.copyfile(FIXTURE / LOG_FILE, directory / LOG_FILE)
    return directory


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tract.cli", *map(str, args)], capture_output=True, text=True)


def messages(tract: Tract) -> list[dict[str, object]]:
    return [message.model_dump(mode="json") for message in tract.compile().messages]


def test_an_old_log_compiles_as_it_did(old_log: Path) -> None:
    before = (old_log / LOG_FILE).read_bytes()
    with Tract.open(old_log, tract_id="alpha", readonly=True) as alpha:
        assert messages(alpha) == EXPECTED["alpha_messages"]
    with Tract.open(old_log, tract_id="beta", readonly=True) as beta:
        assert messages(beta) == EXPECTED["beta_messages"]
        assert [logged.position for logged in beta.events()] == list(range(1, len(list(beta.events())) + 1))
    assert (old_log / LOG_FILE).read_bytes() == before
    assert sorted(path.name for path in old_log.iterdir()) == [LOG_FILE]


def test_an_old_log_verifies_against_the_anchors_written_down_then(old_log: Path) -> None:
    position, digest = EXPECTED["chain_head"]
    report = verify(old_log, anchor=(None, position, digest))
    assert report.ok and report.format == 1
    assert report.log_head is not None and (report.log_head.number, report.log_head.hash) == (position, digest)
    with Tract.open(old_log, tract_id="alpha", readonly=True) as alpha:
        assert alpha.verify(anchor=(position, digest)).ok
        assert alpha.verify(anchor=alpha.chain_head).ok
        assert alpha.chain_head.hash == EXPECTED["alpha_chain_head"][1]
        assert not alpha.verify(anchor=(position, "0" * 64)).ok
    assert cli("verify", old_log, "--anchor", f"{position}:{digest}").returncode == 0
    refused = cli("verify", old_log, "--anchor", f"{position}:{'0' * 64}")
    assert refused.returncode == 1 and "anchor mismatch at position 15" in refused.stderr


def test_damage_to_an_old_log_is_found_at_its_position(old_log: Path) -> None:
    path = old_log / LOG_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify(old_log)
    assert not report.ok and report.problem is not None and report.problem.position >= 1


def test_a_writer_refuses_an_old_log_and_says_how_to_convert_it(old_log: Path) -> None:
    before = (old_log / LOG_FILE).read_bytes()
    with pytest.raises(LogFormatError, match="tract export"):
        Tract.open(old_log, tract_id="alpha")
    assert (old_log / LOG_FILE).read_bytes() == before


def test_export_and_import_convert_an_old_log_to_the_current_format(old_log: Path, tmp_path: Path) -> None:
    export = tmp_path / "old.jsonl"
    assert cli("export", old_log, export).returncode == 0
    done = cli("import", export, tmp_path / "new")
    assert done.returncode == 0, done.stderr
    report = verify(tmp_path / "new")
    assert report.ok and report.format == FORMAT_VERSION and set(report.heads) == {"alpha", "beta"}
    with Tract.open(tmp_path / "new", tract_id="alpha") as alpha:
        assert messages(alpha) == EXPECTED["alpha_messages"]
        head = alpha.chain_head
        assert head.hash != EXPECTED["alpha_chain_head"][1], "converted records chain anew"
        alpha.user("after the conversion")
    assert verify(tmp_path / "new", anchor=(head.tract_id, head.position, head.hash)).ok
    with Tract.open(tmp_path / "new", tract_id="beta", readonly=True) as beta:
        assert messages(beta) == EXPECTED["beta_messages"]
        assert isinstance(beta.chain_head, ChainHead)


def test_one_tract_of_an_old_log_cannot_be_exported_alone(old_log: Path, tmp_path: Path) -> None:
    done = cli("export", old_log, tmp_path / "alpha.jsonl", "--tract", "alpha")
    assert done.returncode == 1 and "export it whole" in done.stderr
    assert not (tmp_path / "alpha.jsonl").exists()
