"""The suppression list compares addresses without case, and refuses CSV lines that run on."""

from __future__ import annotations

import pytest
from support import make_settings

from engine.bounce.suppression import FailedVerdict, Suppressions
from engine.delivery.context import Engine
from engine.platform.errors import InputError


def suppressions(engine: Engine, threshold: int = 5) -> Suppressions:
    settings = make_settings(engine.dsn, suppression={"soft_threshold": threshold})
    return Suppressions(engine.pool, engine.queue.sealer, settings.suppression, engine.clock)


async def test_add_and_remove_treat_spellings_as_one_address(engine: Engine) -> None:
    s = suppressions(engine)
    await s.add("Dup@docomo.ne.jp", "userunknown")
    await s.add("dup@docomo.ne.jp", "保護者の依頼")
    [entry] = await s.list()
    # One entry: the first spelling, the latest reason.
    assert (entry.address, entry.reason) == ("Dup@docomo.ne.jp", "保護者の依頼")
    assert list(await s.lookup(["DUP@docomo.ne.jp"])) == ["DUP@docomo.ne.jp"]
    assert await s.remove("DUP@docomo.ne.jp")
    assert await s.list() == []


async def test_import_dedupes_spellings_and_keeps_the_last_line(engine: Engine) -> None:
    s = suppressions(engine)
    await s.add("Old@ezweb.ne.jp", "userunknown")
    text = (
        "address,reason\nA@docomo.ne.jp,userunknown\na@docomo.ne.jp,保護者の依頼\n"
        "old@ezweb.ne.jp,x\n"
    )
    assert await s.import_csv(text) == 2
    got = {e.address.lower(): e.reason for e in await s.list()}
    assert got == {"a@docomo.ne.jp": "保護者の依頼", "old@ezweb.ne.jp": "x"}


async def test_soft_failures_of_two_spellings_count_for_one_address(engine: Engine) -> None:
    s = suppressions(engine, threshold=2)
    full = ("mailboxfull", "mailbox_full", False)
    assert await s.record_verdicts([FailedVerdict("Mama@au.com", 1, *full)]) == []
    added = await s.record_verdicts([FailedVerdict("mama@au.com", 2, *full)])
    assert added == ["mama@au.com"]
    # A later hard failure of a third spelling does not make a second entry.
    await s.record_verdicts([FailedVerdict("MAMA@au.com", 3, "userunknown", "unknown_user", True)])
    assert [e.address for e in await s.list()] == ["mama@au.com"]


@pytest.mark.parametrize(
    "text",
    [
        'address,note\na@example.jp,"unterminated\nb@example.jp,fine\n',
        'address,note\na@example.jp,"unterminated\nb@example.jp,"closed later"\n',
    ],
)
async def test_unterminated_quote_names_its_line_and_imports_nothing(
    engine: Engine, text: str
) -> None:
    s = suppressions(engine)
    with pytest.raises(InputError, match="line 2"):
        await s.import_csv(text, "list.csv")
    assert await s.list() == []
