"""The compose form as typed: read from a posted form, carried between the steps as hidden
fields, turned into the engine's ``BroadcastRequest`` (the same fields as the staff API's
``POST /api/staff/broadcasts``), into a saved draft, and back from a draft, a template or a
past broadcast.

Everything stays text until ``request``: a refused value goes back to the form exactly as it
was typed, with the engine's Japanese message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import FormData

from admin_api.screens.web import field
from engine.people import Audience, Category
from engine.platform.clock import JST
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff import sending
from engine.staff.saved import Content
from engine.twoway.asks import ReadPolicy
from engine.twoway.questions import Question, QuestionKind

PRIORITIES = {"normal": "通常", "emergency": "緊急 (最優先で送信)"}
QUESTION_KINDS = {"single": "ひとつ選ぶ", "multiple": "いくつでも選ぶ", "number": "数",
                  "text": "自由記述"}
# How many question rows the form offers (the engine allows more; the API takes them).
QUESTION_ROWS = 3
_KINDS = ("board", "school", "grade", "class", "group", "account")
# The audience's JSON (Audience.as_json, or the API's AudienceIn in a draft) by kind.
_PLURAL = {"boards": "board", "schools": "school", "grades": "grade", "classes": "class",
           "groups": "group", "accounts": "account"}


@dataclass(frozen=True)
class QuestionRow:
    label: str = ""
    kind: str = "single"
    options: str = ""  # one option a line
    required: bool = False

    @property
    def empty(self) -> bool:
        return not self.label.strip() and not self.options.strip()


@dataclass(frozen=True)
class Draft:
    """What the form holds, as typed (re-shown after a refusal or from the confirmation)."""

    targets: tuple[str, ...] = ()
    sender: str = ""
    category: str = Category.NOTICE.value
    priority: str = "normal"
    subject: str = ""
    body: str = ""
    # Japan time as an <input type=datetime-local> gives it ("2026-05-01T07:30"); "": now.
    send_at: str = ""
    read: bool = False
    remind_after_hours: str = "24"
    reminders: str = "1"
    questions: tuple[QuestionRow, ...] = ()
    deadline: str = ""
    # The saved draft this was opened from: sending it removes the draft (sent once).
    draft_id: int | None = None
    draft_name: str = ""

    @classmethod
    def of(cls, form: FormData) -> Draft:
        targets = tuple(dict.fromkeys(
            t[:40] for t in form.getlist("to") if isinstance(t, str)
        ))[:500]
        rows = tuple(
            QuestionRow(field(form, f"q{n}_label", 500), field(form, f"q{n}_kind", 20),
                        field(form, f"q{n}_options", 3000).replace("\r\n", "\n"),
                        field(form, f"q{n}_required", 5) == "1")
            for n in range(1, QUESTION_ROWS + 1)
        )
        draft_id = field(form, "draft_id", 20)
        return cls(
            targets, field(form, "sender", 320), field(form, "category", 40),
            field(form, "priority", 20), field(form, "subject", 1000),
            field(form, "body", 200_000).replace("\r\n", "\n"),
            field(form, "send_at", 40), field(form, "read", 5) == "1",
            field(form, "remind_after_hours", 10) or "24", field(form, "reminders", 10) or "1",
            tuple(r for r in rows if not r.empty), field(form, "deadline", 40),
            int(draft_id) if draft_id.isascii() and draft_id.isdigit() else None,
            field(form, "draft_name", 100),
        )

    def question_rows(self) -> list[tuple[int, QuestionRow]]:
        """The rows the form shows: those typed, then empty ones up to ``QUESTION_ROWS``."""
        rows = list(self.questions) + [QuestionRow()] * (QUESTION_ROWS - len(self.questions))
        return list(enumerate(rows[:QUESTION_ROWS], start=1))

    @property
    def asks_something(self) -> bool:
        return self.read or bool(self.questions)

    def audience(self, board_id: int | None) -> Audience:
        """The audience the checkboxes name; InputError for a value no form of ours makes."""
        ids: dict[str, list[int]] = {k: [] for k in _KINDS}
        for t in self.targets:
            kind, _, ident = t.partition(":")
            if kind not in ids or not ident.isascii() or not ident.isdigit():
                raise InputError(f"配信先「{t}」を読み取れません (unknown audience value)")
            ids[kind].append(int(ident))
        if ids["board"] and (board_id is None or set(ids["board"]) != {board_id}):
            raise InputError("教育委員会の指定が正しくありません (not your board)")
        return Audience(
            tuple(ids["board"]), tuple(ids["school"]), tuple(ids["grade"]),
            tuple(ids["class"]), tuple(ids["group"]), tuple(ids["account"]),
        )

    def category_value(self) -> Category:
        try:
            return Category(self.category)
        except ValueError:
            raise InputError("区分を選んでください (unknown category)") from None

    def priority_value(self) -> Priority:
        if self.priority not in PRIORITIES:
            raise InputError("優先度を選んでください (unknown priority)")
        return Priority[self.priority.upper()]

    def send_time(self) -> datetime | None:
        return japan_time(self.send_at, "送信日時")

    def request(self, board_id: int | None) -> sending.BroadcastRequest:
        """The engine's request; InputError (Japanese) for what cannot be read. What the
        engine checks itself (past times, reminder limits, questions) it refuses there."""
        read = None
        if self.read:
            hours, count = _number(self.remind_after_hours, "再通知までの時間"), _number(
                self.reminders, "再通知の回数")
            read = ReadPolicy(timedelta(hours=hours), count)
        return sending.BroadcastRequest(
            sender=self.sender, subject=self.subject, body=self.body,
            audience=self.audience(board_id), category=self.category_value(),
            priority=self.priority_value(), send_at=self.send_time(), read=read,
            questions=tuple(_question(n, r) for n, r in enumerate(self.questions, start=1)),
            deadline=japan_time(self.deadline, "回答の締め切り"),
        )

    def content(self, board_id: int | None, name: str) -> Content:
        """A saved draft of this form (drafts keep the audience and the send time; what the
        broadcast asks is typed again)."""
        audience = self.audience(board_id)
        return Content(
            name, self.sender, self.subject, self.body, self.category_value(),
            self.priority_value(), audience_in(audience), self.send_time(),
        )

    @classmethod
    def from_content(cls, c: Content, board_id: int | None, draft_id: int | None = None
                     ) -> Draft:
        return cls(
            targets_of(c.audience or {}, board_id), c.sender, c.category.value,
            "emergency" if c.priority is Priority.EMERGENCY else "normal", c.subject, c.body,
            input_time(c.send_at), draft_id=draft_id, draft_name=c.name,
        )

    def without_draft(self) -> Draft:
        return replace(self, draft_id=None, draft_name="")


def audience_in(a: Audience) -> dict[str, Any]:
    """An audience in the staff API's ``AudienceIn`` form, as its drafts store it."""
    return {"board": bool(a.boards), "schools": list(a.schools), "grades": list(a.grades),
            "classes": list(a.classes), "groups": list(a.groups), "accounts": list(a.accounts)}


def targets_of(audience: dict[str, Any], board_id: int | None) -> tuple[str, ...]:
    """The form's values of a stored audience (a broadcast's or a draft's)."""
    out: list[str] = []
    if audience.get("board") is True and board_id is not None:
        out.append(f"board:{board_id}")
    for key, kind in _PLURAL.items():
        for ident in audience.get(key) or ():
            if isinstance(ident, int):
                out.append(f"{kind}:{ident}")
    return tuple(dict.fromkeys(out))


def input_time(moment: datetime | None) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%dT%H:%M") if moment else ""


def japan_time(text: str, what: str) -> datetime | None:
    """A datetime-local value read as Japan time; None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{what}を「2026-05-01T07:30」の形で入れてください (a date and time, Japan time)"
        ) from None
    return moment.replace(tzinfo=JST) if moment.tzinfo is None else moment


def _number(text: str, what: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit():
        raise InputError(f"{what}は数字で入れてください (a whole number)")
    return int(text.strip())


def _question(n: int, r: QuestionRow) -> Question:
    try:
        kind = QuestionKind(r.kind)
    except ValueError:
        raise InputError(f"質問 {n} の種類を選んでください (unknown question kind)") from None
    options = tuple(o.strip() for o in r.options.split("\n") if o.strip())
    return Question(f"q{n}", r.label.strip(), kind, r.required, options)
