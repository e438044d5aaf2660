"""The operator categories: complete, Japanese-labelled, and hard only where the address is bad."""

from __future__ import annotations

import engine.bounce as bounce
from engine.bounce import ALL_REASONS, CATEGORIES, category_for_reason


def test_public_names_are_exported() -> None:
    for name in (
        "Verdict",
        "BounceReport",
        "classify_reply",
        "parse_bounce",
        "CATEGORIES",
        "category_for_reason",
    ):
        assert name in bounce.__all__
        assert hasattr(bounce, name)


def test_every_reason_belongs_to_exactly_one_category() -> None:
    for reason in ALL_REASONS:
        owners = [c.key for c in CATEGORIES.values() if reason in c.reasons]
        assert len(owners) == 1, reason
        assert category_for_reason(reason) == owners[0]


def test_there_are_about_twelve_categories_with_japanese_labels() -> None:
    assert 10 <= len(CATEGORIES) <= 14
    for key, category in CATEGORIES.items():
        assert key.isascii() and key == category.key
        assert not category.label_ja.isascii()


def test_only_unknown_user_and_unknown_domain_are_hard() -> None:
    hard = {key for key, c in CATEGORIES.items() if c.hard}
    assert hard == {"unknown_user", "unknown_domain"}


def test_operator_labels_match_the_specification() -> None:
    labels = {c.label_ja for c in CATEGORIES.values()}
    for label in (
        "宛先不明",
        "ドメイン不明",
        "容量超過",
        "受信拒否・フィルタ",
        "自動応答",
        "その他",
    ):
        assert label in labels


def test_unknown_reason_name_falls_into_other() -> None:
    assert category_for_reason("no-such-reason") == "other"
