"""Two-way: read confirmation and reminders, surveys, absence/health reports, replies.

The one place that knows the tables of migration 013. Every function takes the people handle
(``engine.people.People``: pool, sealer, clock); free texts that can identify a family are
sealed at rest. Modules:

    recipients  delivery -> contact and accounts (``link_deliveries``: fanout calls it)
    reads       read requests, the first click, who has read per class, reminders due
    questions   question kinds, checking a form's answers, their stored form
    surveys     questions on a broadcast, answers until the deadline, totals, CSV
    reports     欠席・遅刻・早退 and 健康連絡: school hours and reasons, reports, staff lists
    replies     guardians' replies tied to their delivery by Message-ID
    csv_out     CSV in UTF-8 with BOM, formula-safe cells
    asks        what a new broadcast asks (read, questions, reminder), applied by the fan-out
    fanout      ``send_broadcast``: people's fan-out, its deliveries linked, its asks applied
    personal    what a delivery's personal page shows (a reminder stands for the first mail)
    reminders   the minute task's read reminders, as broadcasts linked to the first one
    family      the report page's children and open reports; confirmation and link mails
    page_limits request counts per link, forged links per network (the pages' rate limits)
    staff_views reads and answers paged, the "new reports" badge and its seen mark
    answers     the automatic answer to a reply (once per delivery, never to an answer)
    notify      class teachers told of new reports by mail (periodic, batched, no names)
"""

from engine.twoway.fanout import send_broadcast
from engine.twoway.questions import Answer, AnswerError, Question, QuestionKind
from engine.twoway.reads import (
    AccountRead,
    ClassReads,
    DueReminder,
    due_read_reminders,
    mark_reminded,
    read_by_class,
    read_list,
    record_read,
    request_read,
)
from engine.twoway.recipients import accounts_of_delivery, contact_of_delivery, link_deliveries
from engine.twoway.replies import Reply, delivery_of_message_id, replies_of, store_reply
from engine.twoway.reports import (
    NewReport,
    Report,
    ReportClosed,
    ReportFilter,
    ReportKind,
    ReportPage,
    ReportSettings,
    Submitted,
    confirmation_recipients,
    correct_report,
    list_reports,
    new_report_count,
    report_settings,
    reports_csv,
    set_report_settings,
    submit_report,
    withdraw_report,
)
from engine.twoway.surveys import (
    Response,
    Survey,
    SurveyClosed,
    SurveyTotals,
    answers_for,
    create_survey,
    responses,
    submit_answers,
    survey_csv,
    survey_of,
    survey_totals,
    unanswered_deliveries,
)

__all__ = [
    "AccountRead", "Answer", "AnswerError", "ClassReads", "DueReminder", "NewReport",
    "Question", "QuestionKind", "Reply", "Report", "ReportClosed", "ReportFilter", "ReportKind",
    "ReportPage", "ReportSettings", "Response", "Submitted", "Survey", "SurveyClosed",
    "SurveyTotals", "accounts_of_delivery", "answers_for", "confirmation_recipients",
    "contact_of_delivery", "correct_report", "create_survey", "delivery_of_message_id",
    "due_read_reminders", "link_deliveries", "list_reports", "mark_reminded",
    "new_report_count", "read_by_class", "read_list", "record_read", "replies_of", "send_broadcast",
    "report_settings", "reports_csv", "request_read", "responses", "set_report_settings",
    "store_reply", "submit_answers", "submit_report", "survey_csv", "survey_of",
    "survey_totals", "unanswered_deliveries", "withdraw_report",
]
