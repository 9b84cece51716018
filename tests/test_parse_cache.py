"""The parse cache keeps results in packs; worker results go in as the pickles they arrived as."""

import pickle

import pytest

from pipeline.ingest.batch import ParseCache
from pipeline.ingest.model import ParsedReturn


@pytest.fixture
def fresh_process(monkeypatch):
    """Forget what this process has read, as a new run would."""
    monkeypatch.setattr(ParseCache, "_entries", {})
    monkeypatch.setattr(ParseCache, "_packs_read", {})


def _forget():
    ParseCache._entries.clear()
    ParseCache._packs_read.clear()


def test_pickled_results_round_trip_through_a_pack(tmp_path, fresh_process):
    cache = ParseCache(tmp_path, "reg")
    parsed = ParsedReturn(file_name="a.xlsx", sheet="Sheet1", district_code="D01")
    cache.put("sha-a", parsed, pickle.dumps(parsed))
    cache.put("sha-b", ParsedReturn(file_name="b.xlsx"))  # a refusal made in the pipeline process
    assert cache.get("sha-a") is parsed
    cache.flush()
    _forget()
    again = ParseCache(tmp_path, "reg")
    assert again.get("sha-a") == parsed
    assert again.get("sha-b").file_name == "b.xlsx"
    assert again.get("sha-c") is None


def test_damaged_entry_is_parsed_again_not_raised(tmp_path, fresh_process):
    cache = ParseCache(tmp_path, "reg")
    cache.put("sha-a", ParsedReturn(file_name="a.xlsx"), b"not a pickle")
    cache.flush()
    _forget()
    assert ParseCache(tmp_path, "reg").get("sha-a") is None


def test_register_change_uses_another_folder(tmp_path, fresh_process):
    ParseCache(tmp_path, "reg1").put("sha-a", ParsedReturn(file_name="a.xlsx"))
    assert ParseCache(tmp_path, "reg2").get("sha-a") is None
