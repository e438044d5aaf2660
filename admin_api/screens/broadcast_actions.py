"""The broadcast page's filters, and what is done to the filtered: resend and remind.

Filters (the staff API's recipients filters): failed (failed or waiting for a retry), unread
(delivered, 「確認しました」 not pressed), unanswered (delivered, no answer to the questions),
an error category, a class (counting a class's people needs the right to send to it, as in
the API). Each action first shows a confirmation naming how many it reaches (nothing sent),
then posts:

    /staff/broadcasts/{id}/resend   ``engine.staff.sending.resend`` (audited
                                    ``broadcast.resend``): a new broadcast, linked to this
                                    one, to the filtered recipients
    /staff/broadcasts/{id}/remind   ``engine.staff.reminding.remind`` (``twoway.remind``):
                                    the unread (``purpose=read``) or unanswered (``survey``)

Rights are the engine's: whoever may see the broadcast may resend or remind it; another
class's broadcast is "not found" for a teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import ScreenRoute, Visit, see_other, visit
from engine.people import Audience
from engine.people.recipients import addresses_in
from engine.platform.errors import InputError
from engine.staff import follow, reminding, sending
from engine.staff.models import NotFoundError
from engine.staff.rights import check_audience

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

BroadcastId = Annotated[int, Path(ge=1, le=2**62)]
PURPOSES = {"read": "「確認しました」をまだ押していない人",
            "survey": "アンケートにまだ回答していない人"}


@dataclass(frozen=True)
class Filters:
    """The recipient filters of the broadcast page, as its query string carries them."""

    failed: bool = False
    unread: bool = False
    unanswered: bool = False
    category: str = ""
    class_id: int | None = None

    @property
    def any(self) -> bool:
        return self != Filters()

    def query(self, **more: object) -> str:
        """The query string (with a leading ``?``, or "" when there is none)."""
        pairs: list[tuple[str, object]] = [
            (k, "true") for k in ("failed", "unread", "unanswered") if getattr(self, k)
        ]
        if self.category:
            pairs.append(("category", self.category))
        if self.class_id is not None:
            pairs.append(("class_id", self.class_id))
        pairs += [(k, v) for k, v in more.items() if v]
        return "?" + urlencode(pairs) if pairs else ""

    def labels(self, class_names: dict[int, str], categories: dict[str, str]) -> list[str]:
        out = [label for on, label in ((self.failed, "失敗・再送待ち"), (self.unread, "未確認"),
                                       (self.unanswered, "未回答")) if on]
        if self.category:
            out.append(f"理由: {categories.get(self.category, self.category)}")
        if self.class_id is not None:
            out.append(class_names.get(self.class_id, f"組 {self.class_id}"))
        return out

    async def recipient_filter(self, v: Visit) -> follow.RecipientFilter:
        addresses: tuple[str, ...] | None = None
        if self.class_id is not None:
            # Filtering by a class is counting its people: the same rights as sending to it.
            classes = (self.class_id,)
            await check_audience(v.api.staff.pool, v.actor, Audience(classes=classes))
            addresses = tuple(await addresses_in(v.api.people, (), classes))
        return follow.RecipientFilter(
            category=self.category or None, failed_only=self.failed, addresses=addresses,
            unread=self.unread, unanswered=self.unanswered,
        )


def filters(
    failed: bool = False, unread: bool = False, unanswered: bool = False,
    category: Annotated[str, Query(max_length=40)] = "",
    class_id: Annotated[str, Query(max_length=19)] = "",
) -> Filters:
    """The filters of a query string; the page's form sends empty values for "all"."""
    ident = int(class_id) if class_id.isascii() and class_id.isdigit() else None
    return Filters(failed, unread, unanswered, category, ident or None)


FiltersQuery = Annotated[Filters, Depends(filters)]


async def matching(v: Visit, broadcast_id: int, which: follow.RecipientFilter) -> int:
    """How many of the broadcast's recipients ``which`` selects (a count, no rows)."""
    total, _ = await follow.recipients(
        v.api.staff.pool, v.api.people.sealer, v.actor, broadcast_id, which, v.api.staff.now(),
        1, 0,
    )
    return total


@router.get("/broadcasts/{broadcast_id}/resend", response_class=HTMLResponse)
async def resend_confirm(request: Request, broadcast_id: BroadcastId, f: FiltersQuery
                         ) -> Response:
    v = await visit(request)
    b = await follow.visible_broadcast(v.api.staff.pool, v.actor, broadcast_id,
                                       v.api.staff.now())
    n = await matching(v, broadcast_id, await f.recipient_filter(v))
    return v.page(
        "resend.html", title=f"再送の確認: {b.subject}", b=b, count=n, f=f,
        action=f"/staff/broadcasts/{broadcast_id}/resend{f.query()}",
        what=f.labels({}, {}) or ["すべての宛先"], purpose="",
    )


@router.post("/broadcasts/{broadcast_id}/resend", response_class=HTMLResponse)
async def resend(request: Request, broadcast_id: BroadcastId, f: FiltersQuery) -> Response:
    v = await visit(request)
    await v.form()
    api = v.api
    try:
        which = await f.recipient_filter(v)
        made = await api.staff.audited(
            v.actor, "broadcast.resend", f"broadcast {broadcast_id}",
            sending.resend(api.staff, api.people, api.queue, v.actor, broadcast_id, which,
                           api.max_age),
            object_of=lambda c: f"broadcast {c.broadcast_id} (resend of {broadcast_id})",
            detail="(screens)",
        )
    except NotFoundError:
        raise  # outside the rights: "not found", as everywhere
    except InputError as exc:
        return v.page("message.html", 422, title="再送できません", text=str(exc))
    return see_other(f"/staff/broadcasts/{made.broadcast_id}")


@router.get("/broadcasts/{broadcast_id}/remind", response_class=HTMLResponse)
async def remind_confirm(
    request: Request, broadcast_id: BroadcastId,
    purpose: Annotated[str, Query(pattern="^(read|survey)$")] = "read",
) -> Response:
    v = await visit(request)
    b = await follow.visible_broadcast(v.api.staff.pool, v.actor, broadcast_id,
                                       v.api.staff.now())
    which = follow.RecipientFilter(unread=purpose == "read", unanswered=purpose == "survey")
    return v.page(
        "resend.html", title=f"再通知の確認: {b.subject}", b=b,
        count=await matching(v, broadcast_id, which), f=Filters(), purpose=purpose,
        action=f"/staff/broadcasts/{broadcast_id}/remind?purpose={purpose}",
        what=[PURPOSES[purpose]],
    )


@router.post("/broadcasts/{broadcast_id}/remind", response_class=HTMLResponse)
async def remind(
    request: Request, broadcast_id: BroadcastId,
    purpose: Annotated[str, Query(pattern="^(read|survey)$")] = "read",
) -> Response:
    v = await visit(request)
    await v.form()
    api = v.api
    try:
        made = await api.staff.audited(
            v.actor, "twoway.remind", f"broadcast {broadcast_id}",
            reminding.remind(api.staff, api.people, api.queue, v.actor, broadcast_id, purpose,
                             api.max_age),
            object_of=lambda r: f"broadcast {r.created.broadcast_id} (reminder of "
                                f"{broadcast_id})",
            detail="(screens)",
        )
    except NotFoundError:
        raise
    except InputError as exc:
        return v.page("message.html", 422, title="再通知できません", text=str(exc))
    return see_other(f"/staff/broadcasts/{made.created.broadcast_id}")
