"""The staff API's request and response bodies (pydantic), as the OpenAPI document shows them.

Times are ISO 8601 with their offset (UTC as stored); people read them in Japan time on the
screens and in the CSV downloads.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from engine.people import Category
from engine.staff.models import Role, StaffMember


def _no_control(text: str) -> str:
    """PostgreSQL text cannot hold NUL, and no field needs control characters but the body's
    line breaks and tabs: refuse them as bad input rather than fail in the database."""
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in text):
        raise ValueError("制御文字は使えません (control characters are not allowed)")
    return text


# Every text field of the API.
Text = Annotated[str, AfterValidator(_no_control)]
# Ids are PostgreSQL bigints: anything else is no id of ours, refused before the database.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

PriorityName = Literal["emergency", "normal", "bulk"]
StateName = Literal["queued", "sending", "deferred", "delivered", "failed"]


class StrictIn(BaseModel):
    """Every request body: a field the model does not know is refused (422 naming it), never
    dropped: a misspelt ``"sendat"`` must not send a scheduled mail at once."""

    model_config = ConfigDict(extra="forbid")


class LoginIn(StrictIn):
    login: Text = Field(max_length=64, description="ログイン ID")
    password: Text = Field(max_length=256)
    totp_code: Text | None = Field(default=None, max_length=10, description="確認コード (6 桁)")


class SenderOut(BaseModel):
    address: str
    display_name: str


class StaffOut(BaseModel):
    id: int
    login: str
    name: str
    role: Role
    role_label_ja: str
    organisation_id: int
    organisation_code: str
    totp_enabled: bool
    locked_until: datetime | None = Field(
        description="the latest time until which some source must wait before trying this "
        "login again after repeated failures (may have passed); other sources never wait"
    )
    disabled_at: datetime | None
    created_at: datetime
    class_ids: list[int]
    group_ids: list[int]
    password_changed_at: datetime | None = None

    @classmethod
    def of(cls, m: StaffMember) -> StaffOut:
        return cls(
            id=m.id, login=m.login, name=m.name, role=m.role, role_label_ja=m.role.label_ja,
            organisation_id=m.organisation_id, organisation_code=m.organisation_code,
            totp_enabled=m.totp_enabled, locked_until=m.locked_until, disabled_at=m.disabled_at,
            created_at=m.created_at, class_ids=list(m.class_ids), group_ids=list(m.group_ids),
            password_changed_at=m.password_changed_at,
        )


class SessionOut(BaseModel):
    staff: StaffOut
    expires_at: datetime
    idle_timeout_seconds: int = Field(
        description="the session also ends after this many seconds without a request"
    )
    totp_setup_required: bool = Field(
        description="true: TOTP is compulsory and not set up; only /api/staff/totp works"
    )
    password_change_required: bool = Field(
        description="true: the password is too old or too weak; only POST /api/staff/password "
        "works until it is changed"
    )
    previous_login_at: datetime | None = Field(
        description="前回のログイン日時 / the sign-in before this session's (null: the first)"
    )
    previous_login_address: str = Field(description="前回のログイン元 / where it came from")


class LoginOut(SessionOut):
    token: str = Field(description="Authorization: Bearer TOKEN で送る / send as a Bearer token")


class TotpSetupOut(BaseModel):
    secret: str
    otpauth_uri: str


class TotpConfirmIn(StrictIn):
    code: Text = Field(max_length=10)


class CurrentFactorsIn(StrictIn):
    """What proves it is the account's owner, not just someone holding its session."""

    current_password: Text = Field(max_length=256, description="現在のパスワード")
    totp_code: Text | None = Field(
        default=None, max_length=10, description="確認コード (設定済みのとき必須)"
    )


class PasswordChangeIn(CurrentFactorsIn):
    new_password: Text = Field(max_length=256, description="新しいパスワード (12 文字以上)")


class NewStaffIn(StrictIn):
    login: Text = Field(max_length=64)
    name: Text = Field(max_length=100)
    role: Role
    organisation_id: Id
    password: Text = Field(max_length=256)
    class_ids: list[Id] = Field(default_factory=list, max_length=100)
    group_ids: list[Id] = Field(default_factory=list, max_length=100)


class PasswordResetIn(StrictIn):
    password: Text = Field(max_length=256)
    clear_totp: bool = Field(default=False, description="also remove TOTP (a lost phone)")


class PolicyIn(StrictIn):
    totp_required: bool


class PolicyOut(BaseModel):
    totp_required: bool


class NewApiKeyIn(StrictIn):
    name: Text = Field(max_length=100)
    organisation_id: Id


class ApiKeyOut(BaseModel):
    id: int
    prefix: str
    name: str
    organisation_id: int
    created_at: datetime
    disabled_at: datetime | None
    last_used_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="shown only now / この画面でしか表示されません")


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor_kind: str
    actor_id: int | None
    actor_name: str
    organisation_id: int | None
    action: str
    object: str
    address: str
    result: str
    detail: str


class AuditPage(BaseModel):
    total: int
    items: list[AuditEntryOut]


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_bad: int | None
    message: str


class AudienceIn(StrictIn):
    """Who the broadcast is for, by id; everything given is added together."""

    board: bool = Field(default=False, description="every account of the board (board only)")
    schools: list[Id] = Field(default_factory=list, max_length=1000)
    grades: list[Id] = Field(default_factory=list, max_length=1000)
    classes: list[Id] = Field(default_factory=list, max_length=1000)
    groups: list[Id] = Field(default_factory=list, max_length=1000)
    accounts: list[Id] = Field(default_factory=list, max_length=10000)


class OrgUnitOut(BaseModel):
    id: int
    code: str
    name: str
    kind: str = Field(description="board, elementary, junior_high, ...")


class OrgGradeOut(BaseModel):
    id: int
    school_id: int
    grade: int
    year: int


class OrgClassOut(BaseModel):
    id: int
    school_id: int
    grade_id: int
    grade: int
    name: str


class OrgGroupOut(BaseModel):
    id: int
    owner_id: int = Field(description="the board or school that owns the group")
    name: str
    kind: str


class OrganisationOut(BaseModel):
    """What the caller may name in ``AudienceIn``, with the ids to use there: the board's
    staff and keys get the board, its schools, their grades and classes of ``year`` and every
    group; a school's its own; a teacher their classes (with grade and school) and groups."""

    year: int = Field(description="the current school year (April to March)")
    board: OrgUnitOut | None = Field(description="set for the board's staff and keys only")
    schools: list[OrgUnitOut]
    grades: list[OrgGradeOut]
    classes: list[OrgClassOut]
    groups: list[OrgGroupOut]


class ReadConfirmationIn(StrictIn):
    """Ask for 「確認しました」 and remind those who have not pressed it."""

    remind_after_minutes: int = Field(
        ge=1, le=20160, description="再通知までの時間 (分) / minutes before a reminder"
    )
    max_reminders: int = Field(ge=0, le=10, description="再通知の回数の上限 / at most")


class QuestionIn(StrictIn):
    """One question of a survey (engine.twoway.questions)."""

    key: Text = Field(max_length=32, description="英小文字で始まる英数字と _ / a-z0-9_")
    label: Text = Field(max_length=200, description="質問の文")
    kind: Literal["single", "multiple", "number", "text"]
    required: bool = False
    options: list[Annotated[Text, Field(max_length=100)]] = Field(
        default_factory=list, max_length=30, description="選択肢 (single / multiple)"
    )
    minimum: Decimal | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    maximum: Decimal | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    max_length: int = Field(default=1000, ge=1, le=10_000)
    unit: Text = Field(default="", max_length=10, description="人、℃ など")


class BroadcastIn(StrictIn):
    sender: Text = Field(
        default="", max_length=254,
        description="差出人アドレス: 学校 (教育委員会) に登録されたものだけ。省略すると最初の"
        "もの (GET /api/staff/senders) / From address, one of the organisation's; empty: its "
        "first",
    )
    subject: Text = Field(max_length=200)
    body: Text = Field(max_length=100_000)
    audience: AudienceIn
    category: Category = Category.NOTICE
    priority: PriorityName = "normal"
    send_at: AwareDatetime | None = Field(
        default=None, description="予約送信の時刻 (ISO 8601 with offset); omitted: now"
    )
    read_confirmation: ReadConfirmationIn | None = Field(
        default=None, description="既読確認を求める / ask for read confirmation"
    )
    questions: list[QuestionIn] = Field(
        default_factory=list, max_length=30, description="アンケートの質問 / survey questions"
    )
    answer_deadline: AwareDatetime | None = Field(
        default=None, description="回答の締め切り (questions need one)"
    )


class BroadcastCreatedOut(BaseModel):
    broadcast_id: int
    recipients: int
    replayed: bool = Field(description="true: the same idempotency key made it before")
    summary_ja: str
    status_url: str


class BroadcastOut(BaseModel):
    id: int
    created_at: datetime
    send_at: datetime
    sender: str
    subject: str
    priority: PriorityName
    category: str
    state: Literal["scheduled", "sending", "finished", "cancelled"]
    state_label_ja: str
    recipients: int
    suppressed: int
    cancelled_at: datetime | None
    organisation_id: int | None
    staff_id: int | None
    by_state: dict[StateName, int]
    resend_of: int | None = Field(description="the broadcast this one resends to")


class ResendIn(StrictIn):
    """Which recipients of the first broadcast get it again; all filters apply together."""

    failed: bool = Field(default=True, description="only those failed or waiting for a retry")
    temporary: bool = Field(
        default=False, description="only those whose error category is temporary (soft)"
    )
    state: StateName | None = None
    category: Text | None = Field(default=None, max_length=40, description="e.g. mailbox_full")
    grade_id: Id | None = Field(default=None, description="only the contacts of this grade")
    class_id: Id | None = Field(default=None, description="only the contacts of this class")
    subject: Text | None = Field(default=None, max_length=200, description="omitted: the same")
    body: Text | None = Field(default=None, max_length=100_000, description="omitted: the same")


class BroadcastPage(BaseModel):
    total: int
    items: list[BroadcastOut]


class CategoryCountOut(BaseModel):
    category: str
    label_ja: str
    state: StateName
    count: int


class BroadcastStatusOut(BaseModel):
    broadcast: BroadcastOut
    body: str = Field(description="the text, e.g. to copy it into a new broadcast")
    audience: dict[str, Any] | None = Field(
        description="whom it was addressed to, by id (boards, schools, grades, classes, "
        "groups, accounts) and the number of addresses given directly"
    )
    by_category: list[CategoryCountOut]
    skipped: dict[str, int] = Field(description="contacts left out, by reason")
    may_have_arrived: int = Field(
        0, description="failed deliveries whose sending was interrupted (the runner stopped "
        "while it held them): they may have arrived / 届いている可能性がある失敗"
    )


class CancelOut(BaseModel):
    broadcast_id: int
    cancelled: int
    in_flight: int
    delivered: int
    failed: int


class AccountRefOut(BaseModel):
    """An account (child or staff member) the address receives for."""

    id: int
    name: str
    school_id: int
    grade: int | None
    class_name: str | None


class RecipientOut(BaseModel):
    delivery_id: int
    address: str
    state: StateName
    state_label_ja: str
    attempts: int
    last_code: int | None
    last_status: str | None
    last_text: str | None
    reason: str | None
    category: str | None
    category_label_ja: str
    updated_at: datetime
    finished_at: datetime | None
    accounts: list[AccountRefOut]
    may_have_arrived: bool = Field(
        False, description="failed, but its sending was interrupted: it may have arrived"
    )
    tls: bool | None = Field(
        None, description="whether the latest attempt went over TLS; null: no attempt "
        "reached a server"
    )


class RecipientPage(BaseModel):
    total: int
    items: list[RecipientOut]


class TemplateIn(StrictIn):
    """A template: a name and the text a school sends often."""

    name: Text = Field(max_length=100)
    sender: Text = Field(default="", max_length=254)
    subject: Text = Field(default="", max_length=200)
    body: Text = Field(default="", max_length=100_000)
    category: Category = Category.NOTICE
    priority: PriorityName = "normal"


class DraftIn(TemplateIn):
    """A draft: everything a broadcast needs, kept until it is sent."""

    audience: AudienceIn | None = None
    send_at: AwareDatetime | None = None


class SavedOut(BaseModel):
    id: int
    kind: Literal["template", "draft"]
    organisation_id: int
    staff_id: int | None
    name: str
    sender: str
    subject: str
    body: str
    category: Category
    priority: PriorityName
    audience: AudienceIn | None
    send_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FileOut(BaseModel):
    """A file a broadcast carries (a personal download link in each recipient's page)."""

    position: int = Field(description="n of the guardians' link /m/{token}/files/{n}")
    name: str
    media_type: str
    size: int = Field(description="bytes")
    sha256: str = Field(description="of the content, hex")
    created_at: datetime
    expires_at: datetime = Field(description="links work until then")
    withdrawn_at: datetime | None = Field(description="taken back by staff: content deleted")
    downloads: int = Field(description="downloads in all")
    recipients: int = Field(description="recipients who downloaded it at least once")


class BroadcastWithFilesOut(BroadcastCreatedOut):
    files: list[FileOut]


class RegistrationRateOut(BaseModel):
    """One school (grade and class_name null: the school's total), grade (class_name null:
    the grade's total) or class. Children's active accounts only."""

    school: str
    school_name: str
    grade: int | None
    class_name: str | None
    accounts: int
    registered_accounts: int = Field(
        description="Accounts with at least one confirmed contact (登録済み)"
    )
    contacts: int
    confirmed_contacts: int
    account_rate: float = Field(description="registered_accounts / accounts")
    contact_rate: float = Field(description="confirmed_contacts / accounts")


class RegistrationRatePage(BaseModel):
    items: list[RegistrationRateOut]
