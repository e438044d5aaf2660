"""Surveys: answers changed until the deadline and refused after, totals, head count, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from engine.people import Audience
from engine.people.accounts import purge
from engine.people.contacts import add_contact
from engine.people.directory import add_group
from engine.platform.errors import InputError
from engine.twoway import (
    AnswerError,
    Question,
    QuestionKind,
    SurveyClosed,
    answers_for,
    create_survey,
    responses,
    submit_answers,
    survey_csv,
    survey_totals,
    unanswered_deliveries,
)

from .conftest import World

QUESTIONS = [
    Question("attend", "参加しますか", QuestionKind.SINGLE, True, ("参加", "不参加")),
    Question("days", "参加できる日", QuestionKind.MULTIPLE, False, ("土", "日", "祝")),
    Question("people", "参加人数", QuestionKind.NUMBER, False, minimum=Decimal(0),
             maximum=Decimal(10), unit="人"),
    Question("comment", "ご意見", QuestionKind.TEXT),
]


async def setup(world: World) -> tuple[int, dict[str, int]]:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await create_survey(world.people, b, QUESTIONS, world.clock.now() + timedelta(days=2))
    return b, await world.deliveries(b)


async def test_an_answer_can_be_changed_before_the_deadline_and_is_refused_after(
    world: World,
) -> None:
    b, d = await setup(world)
    hanako = d["hanako.mama@docomo.ne.jp"]
    await submit_answers(world.people, hanako, {"attend": "0", "people": "2"})
    world.clock.advance(86400)
    await submit_answers(world.people, hanako, {"attend": "1", "comment": "都合が悪いです"})
    assert await answers_for(world.people, hanako) == {"attend": 1, "comment": "都合が悪いです"}

    world.clock.advance(86400)  # exactly the deadline
    with pytest.raises(SurveyClosed, match="締め切りました") as closed:
        await submit_answers(world.people, hanako, {"attend": "0"})
    assert "closed" in str(closed.value)
    assert await answers_for(world.people, hanako) == {"attend": 1, "comment": "都合が悪いです"}


async def test_totals_count_each_option_and_sum_the_head_count(world: World) -> None:
    b, d = await setup(world)
    taro = await world.account(("sho1", 3, "1", 1))
    await submit_answers(world.people, d["taro.papa@docomo.ne.jp"],
                         {"attend": "0", "days": ["0", "1"], "people": "3"})
    # 太郎's other guardian answers for 次郎 (and must pick the child: two in the audience).
    with pytest.raises(InputError, match="お子さまを選んで"):
        await submit_answers(world.people, d["kyoudai@ezweb.ne.jp"], {"attend": "0"})
    jiro = await world.account(("sho1", 1, "1", 5))
    await submit_answers(world.people, d["kyoudai@ezweb.ne.jp"],
                         {"attend": "0", "days": ["1"], "people": "2"}, account_id=jiro)
    await submit_answers(world.people, d["ichiro@softbank.ne.jp"], {"attend": "1"})
    totals = await survey_totals(world.people, b)
    assert totals.respondents == 3
    by_key = {t.question.key: t for t in totals.questions}
    assert by_key["attend"].options == (2, 1) and by_key["attend"].answered == 3
    assert by_key["days"].options == (1, 2, 0)
    assert by_key["people"].total == Decimal(5) and by_key["people"].answered == 2
    assert by_key["comment"].answered == 0
    answered = {(r.account_id, r.name): r.answers["attend"] for r in await responses(
        world.people, b)}
    assert answered == {(taro, "山田太郎"): 0, (jiro, "山田次郎"): 0,
                        (await world.account(("sho1", 3, "2", 1)), "鈴木一郎"): 1}


async def test_one_family_answers_once_the_last_guardian_wins(world: World) -> None:
    b, d = await setup(world)
    taro = await world.account(("sho1", 3, "1", 1))
    await submit_answers(world.people, d["taro.papa@docomo.ne.jp"], {"attend": "0"})
    await submit_answers(world.people, d["kyoudai@ezweb.ne.jp"], {"attend": "1"}, account_id=taro)
    rows = await responses(world.people, b)
    assert [(r.account_id, r.answers["attend"]) for r in rows] == [(taro, 1)]
    assert rows[0].contact_id == await world.contact("kyoudai@ezweb.ne.jp")


async def test_bad_answers_are_refused_and_change_nothing(world: World) -> None:
    b, d = await setup(world)
    hanako = d["hanako.mama@docomo.ne.jp"]
    with pytest.raises(AnswerError) as bad:
        await submit_answers(world.people, hanako, {"days": ["7"], "people": "11", "x": "1"})
    assert set(bad.value.problems) == {"attend", "days", "people", "x"}
    with pytest.raises(AnswerError):
        await submit_answers(world.people, hanako, {"attend": ["0", "1"]})
    with pytest.raises(AnswerError):
        await submit_answers(world.people, hanako, {"attend": "0", "people": "abc"})
    # Another family's child through this delivery.
    with pytest.raises(InputError, match="回答できません"):
        await submit_answers(world.people, hanako, {"attend": "0"},
                             account_id=await world.account(("sho1", 3, "2", 1)))
    assert await world.people.pool.fetchval("SELECT count(*) FROM survey_responses") == 0


async def test_a_bad_survey_or_a_past_deadline_is_refused(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    now = world.clock.now()
    with pytest.raises(InputError, match="締め切りが過去"):
        await create_survey(world.people, b, QUESTIONS, now)
    with pytest.raises(InputError, match="選択肢"):
        await create_survey(world.people, b, [Question("a", "一つ", QuestionKind.SINGLE,
                                                       options=("はい",))], now + timedelta(1))
    with pytest.raises(InputError, match="重複"):
        await create_survey(world.people, b, [QUESTIONS[3], QUESTIONS[3]], now + timedelta(1))
    assert await world.people.pool.fetchval("SELECT count(*) FROM surveys") == 0


async def test_unanswered_lists_exactly_the_deliveries_with_a_child_not_answered(
    world: World,
) -> None:
    b, d = await setup(world)
    await submit_answers(world.people, d["hanako.mama@docomo.ne.jp"], {"attend": "0"})
    await submit_answers(world.people, d["ichiro-2@i.softbank.jp"], {"attend": "0"})
    await submit_answers(world.people, d["taro.papa@docomo.ne.jp"], {"attend": "0"})
    # kyoudai@ is still owed: 次郎 has no answer (太郎 has).
    assert [r.recipient for r in await unanswered_deliveries(world.people, b)] == [
        "kyoudai@ezweb.ne.jp"]
    await submit_answers(world.people, d["kyoudai@ezweb.ne.jp"], {"attend": "1"},
                         account_id=await world.account(("sho1", 1, "1", 5)))
    assert await unanswered_deliveries(world.people, b) == []


async def test_csv_is_utf8_with_bom_with_labels_and_safe_cells(world: World) -> None:
    b, d = await setup(world)
    await submit_answers(world.people, d["hanako.mama@docomo.ne.jp"],
                         {"attend": "0", "days": ["0", "2"], "people": "2",
                          "comment": "=HYPERLINK(\"x\")"})
    data = await survey_csv(world.people, b)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["学年", "組", "番号", "氏名", "回答日時", "参加しますか", "参加できる日",
                       "参加人数", "ご意見"]
    assert rows[1][:4] == ["3", "1", "2", "佐藤花子"]
    assert rows[1][5:] == ["参加", "土、祝", "2", "'=HYPERLINK(\"x\")"]


async def test_free_text_answers_are_not_stored_in_clear(world: World) -> None:
    b, d = await setup(world)
    secret = "長男が喘息のため参加を控えます"
    await submit_answers(world.people, d["hanako.mama@docomo.ne.jp"],
                         {"attend": "1", "comment": secret})
    dump = await world.people.pool.fetchval(
        "SELECT string_agg(s::text, '|') FROM survey_responses s")
    # Neither as text (jsonb) nor as the bytes of a bytea column (shown in hex).
    assert "喘息" not in dump and "喘息".encode().hex() not in dump
    assert (await answers_for(world.people, d["hanako.mama@docomo.ne.jp"]))["comment"] == secret


async def test_a_citizen_answers_alone_and_the_answer_goes_with_the_contact(
    world: World,
) -> None:
    watch = await add_group(world.people, "見守りボランティア", is_public=True)
    citizen = await add_contact(world.people, "citizen@example.jp", groups=[watch.id],
                                confirmed=True)
    b = await world.send(Audience(groups=(watch.id,)))
    await create_survey(world.people, b, QUESTIONS, world.clock.now() + timedelta(days=1))
    d = await world.deliveries(b)
    await submit_answers(world.people, d["citizen@example.jp"], {"attend": "0",
                                                                 "comment": "参加します"})
    rows = await responses(world.people, b)
    assert [(r.account_id, r.contact_id, r.name) for r in rows] == [(None, citizen, "")]
    assert await unanswered_deliveries(world.people, b) == []
    # Deleting the contact (purge at contract end) deletes its own answers.
    await world.people.pool.execute("DELETE FROM contacts WHERE id = $1", citizen)
    assert await world.people.pool.fetchval("SELECT count(*) FROM survey_responses") == 0


async def test_purging_everyone_leaves_no_answer_behind(world: World) -> None:
    b, d = await setup(world)
    await submit_answers(world.people, d["hanako.mama@docomo.ne.jp"], {"attend": "0"})
    await purge(world.people, None)
    assert await world.people.pool.fetchval("SELECT count(*) FROM survey_responses") == 0


async def test_full_width_numbers_are_read_and_free_text_is_kept_as_written(
    world: World,
) -> None:
    b, d = await setup(world)
    hanako = d["hanako.mama@docomo.ne.jp"]
    await submit_answers(world.people, hanako, {"attend": "０", "people": "３",
                                                "comment": "ｶﾀｶﾅと　全角空白"})
    assert await answers_for(world.people, hanako) == {
        "attend": 0, "people": Decimal(3), "comment": "ｶﾀｶﾅと　全角空白"}
