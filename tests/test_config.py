"""Settings from the environment."""

from pipeline.config import DEFAULT_PROVINCE, load_settings


def test_province_from_the_environment_with_its_spacing_tidied(monkeypatch):
    monkeypatch.setenv("PIPELINE_PROVINCE", "  Đắk   Lắk ")
    assert load_settings().province == "Đắk Lắk"


def test_province_defaults_to_gia_lai_when_unset_or_blank(monkeypatch):
    monkeypatch.delenv("PIPELINE_PROVINCE", raising=False)
    assert load_settings().province == DEFAULT_PROVINCE == "Gia Lai"
    monkeypatch.setenv("PIPELINE_PROVINCE", "  ")
    assert load_settings().province == "Gia Lai"
