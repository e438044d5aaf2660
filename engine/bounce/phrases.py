"""Which reply or bounce wording means which reason: the text half of classification.

Which phrases mean which reason is learnt from Sisimai's documented behaviour and from real
replies (facts only); the patterns and their order are mamoru's own. Order matters: the first
rule that matches wins, so narrow wording (a DMARC failure, a full mailbox) comes before broad
wording ("rejected", "blocked") that would otherwise swallow it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from engine.bounce import reasons as r
from engine.bounce.rules import allowed, is_tracing


@dataclass(frozen=True, slots=True)
class PhraseGroup:
    """Phrases that all mean one reason: one regex for speed, and each phrase for tracing."""

    reason: str
    rule_id: str
    pattern: re.Pattern[str]
    phrases: tuple[tuple[str, re.Pattern[str]], ...]
    #: Broad wording ("rejected", "try again later", "timed out") that a precise RFC 3463
    #: status outranks; narrow wording outranks the status.
    weak: bool = False

    def decides(self, text: str) -> bool:
        """True when a phrase of this group is in the text (and, when tracing, allowed)."""
        if not self.pattern.search(text):
            return False
        if not is_tracing():
            return True
        # Traced at two levels: the meaning (the group) and each wording of it.
        if not allowed(self.rule_id):
            return False
        return any(p.search(text) and allowed(rule_id) for rule_id, p in self.phrases)


def _rule(
    reason: str, meaning: str, *patterns: str, kind: str = "phrase", weak: bool = False
) -> PhraseGroup:
    # Patterns are written in lower case and matched against lower-cased text: twice as fast
    # as IGNORECASE matching.
    return PhraseGroup(
        reason,
        f"{kind}:{reason}:{meaning}",
        re.compile("|".join(f"(?:{p})" for p in patterns)),
        tuple((f"wording:{kind}:{reason}:{p}", re.compile(p)) for p in patterns),
        weak,
    )


_RULES: Final[tuple[PhraseGroup, ...]] = (
    # Narrow wording first: these phrases are unambiguous wherever they appear.
    _rule(
        r.SYSTEM_FULL,
        "the receiving system is out of storage",
        r"insufficient (?:system storage|disk space)",
        r"(?:disk|system|file ?system) (?:is )?full",
        r"out of (?:disk|storage)",
        r"no space left",
        r"(?:disk|file ?system|system storage)\b.{0,20}\b(?:full|exhausted|insufficient)",
    ),
    _rule(
        r.SYSTEM_ERROR,
        "a part of the receiving system failed",
        r"ldap",
        r"queue file write error",
        r"internal (?:server |system )?error",
        r"local configuration error",
        r"\b(?:internal|local|configuration|queue ?file|i/o|ldap|database)\b"
        r"[\w\s]{0,20}\b(?:error|failure)",
        r"(?:unable to|could not|cannot) (?:contact|reach) .{0,20}(?:ldap|database|directory)",
    ),
    _rule(
        r.NOT_ACCEPT,
        "the domain takes no mail",
        r"doesn'?t receive (?:e-?)?mail",
        r"does not receive (?:e-?)?mail",
        r"null mx",
        r"\bno (?:mx|smtp service|mail (?:service|exchanger))\b",
        r"\b(?:mx|srv) .{0,40}\bno (?:smtp|mail)\b",
    ),
    # Refusals of our own envelope sender, before any wording about unknown domains or users
    # could pin them on the recipient's address.
    _rule(
        r.REJECTED,
        "our envelope sender is refused",
        r"sender address rejected",
        r"domain of sender address",
        r"sender verify failed",
        r"sender domain (?:must|does not|not found)",
        r"envelope sender .{0,40}(?:rejected|invalid|unknown)",
    ),
    _rule(
        r.HOST_UNKNOWN,
        "the domain does not exist, in so many words",
        r"host or domain name not found",
        r"account or domain may not exist",
        r"ドメイン.{0,10}(?:存在しません|存在しない|見つかりません|不明)",
    ),
    _rule(
        r.SPAM_DETECTED,
        "the content is judged spam",
        r"spam classification",
        r"classified as spam",
        r"(?:rejected|blocked) as spam",
        r"detected as spam",
        r"(?:black ?listed|listed|blocked|bad) (?:url|uri|link|domain)s?\b",
        r"\b(?:url|uri|link)s?\b.{0,30}\b(?:black ?listed|blocked)",
    ),
    _rule(
        r.BLOCKED,
        "the sending address is banned",
        r"banned sending ip",
        r"client host blocked",
        r"not accepted from this ip",
        r"helo command rejected",
        r"\b(?:ip|address|host)\b.{0,30}?\bbanned\b|\bbanned\b.{0,20}\b(?:ip|address|host)\b",
        r"\binvalid ip\b|\bip\b.{0,20}\binvalid\b",
    ),
    _rule(
        r.NETWORK_ERROR,
        "a mail loop or a failed DNS lookup",
        r"hop count",
        r"mail loop",
        r"loops? back to myself",
        r"too many hops",
        r"routing loop",
        r"dns error",
        r"name service error",
        r"host name lookup failure",
        r"establish an? (?:smtp )?connection",
    ),
    _rule(
        r.VIRUS_DETECTED,
        "malware was found",
        r"\bvirus",
        r"malware",
        r"infected",
        r"trojan",
        r"ウイルス",
    ),
    _rule(
        r.NOT_COMPLIANT_RFC,
        "the message breaks the message format RFCs",
        r"rfc ?(?:2822|5322|5321|822)\s*(?:compliant|complian|standard|violation|require)",
        r"not (?:rfc[ -]?\d* )?compliant",
        r"comply with rfc",
        r"multiple (?:\S+ )?(?:from|addresses in from|subject|to|date|message-id)",
        r"duplicate (?:header|from|message-id|subject)",
        r"missing (?:required )?(?:header|from|date|message-id)",
        r"non-compliant",
    ),
    _rule(
        r.AUTH_FAILURE,
        "SPF, DKIM or DMARC failed",
        r"\bdmarc\b",
        r"\bspf\b",
        r"\bdkim\b",
        r"sender policy framework",
        r"unauthenticated (?:e-?)?mail",
        r"domain-?keys?",
        r"sender id\b",
        r"not pass(?:ed)? (?:authentication|dmarc)",
        r"authentication checks? fail",
        r"authentication information",
        r"5\.7\.2[0-36]\b",
        r"5\.7\.509\b",
        r"(?:does not have|lacks?) authentication|fails? to pass .{0,20}authentication"
        r"|authentication checks?",
    ),
    _rule(
        r.REQUIRE_PTR,
        "the sending host lacks reverse DNS",
        r"reverse (?:dns|lookup|hostname|name)",
        r"\bptr\b",
        r"rdns",
        r"reverse-?resolv",
        r"no (?:reverse|dns) (?:record|entry)",
        r"cannot find your hostname",
        r"client host .{0,60}(?:not|could not|cannot) (?:be )?(?:resolve|found)",
        r"ip name lookup failed",
        r"hostname .{0,40}(?:not match|does not resolve)",
        r"unresolvable (?:address|host)",
        r"5\.7\.25\b",
        r"without hostname",
        r"mismatches client ip",
        r"\b(?:rdns|ptr|reverse[- ]?dns)\b",
        r"\bmismatch\w* .{0,20}\bip\b|\bip\b.{0,20}\bmismatch",
    ),
    _rule(
        r.BAD_REPUTATION,
        "the sender's reputation is too low",
        r"(?:poor|low|bad) reputation",
        r"reputation (?:is|of)",
        r"ip reputation",
        r"sender reputation",
        r"unusual rate of unsolicited",
        r"user complaints",
    ),
    _rule(
        r.TOO_MANY_CONN,
        "too many connections or recipients",
        r"too many (?:connections|sessions|concurrent|simultaneous|recipients|hosts)",
        r"connection (?:limit|rate)",
        r"concurrent connections",
        r"maximum (?:number of )?connections",
        r"frequency limited",
    ),
    _rule(
        r.SPEEDING,
        "we send too fast",
        r"try again slower",
        r"slow down",
        r"sending (?:too )?fast",
        r"at a rate that prevents",
        r"\bat a rate\b",
        r"\btoo (?:fast|quickly)\b",
    ),
    _rule(
        r.BLOCKED,
        "the sending host is on a block list",
        r"client host (?:\S+ )?(?:rejected|blocked)",
        r"(?:ip|host) .{0,30}blocked for spam",
        r"invalid ip",
        r"blocked using",
        r"\bdnsbl\b",
        r"\brbl\b",
    ),
    _rule(
        r.SPAM_DETECTED,
        "the content looks like spam",
        r"\b(?:message )?content\b.{0,20}\b(?:rejected|refused|not accepted|blocked)",
        r"\bspam(?!haus|cop)",
        r"junk ?mail",
        r"unsolicited",
        r"\bube\b",
        r"content filter",
        r"message content rejected",
        r"blacklisted (?:url|link|domain)",
        r"classified as",
        r"score[sd]? (?:too high|high)",
        r"suspicious",
        r"phish",
        r"迷惑メール",
        r"スパム",
    ),
    _rule(
        r.MAILBOX_FULL,
        "the mailbox is over quota",
        r"mail ?box (?:is )?(?:full|over ?quota)",
        r"(?:mailbox|quota|storage) .{0,20}(?:is full|exceeded)",
        r"exceeds? .{0,20}quota",
        r"mailbox (?:has )?exceeded",
        r"over ?quota",
        r"quota (?:exceeded|exceed|full|violation)",
        r"exceeded (?:storage|quota)",
        r"(?:storage|disk) quota",
        r"too much mail data",
        r"mailfolder is full",
        r"account is full",
        r"mailbox size limit",
        r"not enough (?:storage|space)",
        r"mailbox exceeds",
        r"insufficient (?:storage|space)",
        r"inbox is full",
        r"full mailbox",
        r"容量",
        r"exceeds? (?:the )?(?:allowed|maximum) (?:size|mailbox)",
        r"(?:メールボックス|受信箱|ボックス).{0,10}(?:いっぱい|一杯|満杯|容量)|容量.{0,6}(?:超|オーバー)",
    ),
    _rule(
        r.CONTENT_ERROR,
        "the message structure is refused",
        r"headers? (?:too large|too long)",
        r"media error",
        r"invalid mime",
        r"mime (?:error|header)",
        r"improper use of 8-?bit",
        r"malformed (?:mime|message|header)",
        r"\bheaders?\b.{0,20}?\b(?:too (?:large|long|many|big)|exceed\w*)",
    ),
    _rule(
        r.MESG_TOO_BIG,
        "the message is too large",
        r"message (?:is )?too (?:large|big)",
        r"message size exceeds",
        r"(?:size|length) (?:of (?:the )?message )?exceeds",
        r"exceeds? (?:the )?(?:size|message size) limit",
        r"message (?:length|size) (?:is )?(?:too|over)",
        r"mail size",
        r"too large",
        r"exceeds? (?:the )?maximum (?:message )?size",
        r"(?:メール|メッセージ)?(?:の)?サイズ.{0,10}(?:超|大き|制限)",
    ),
    _rule(
        r.HAS_MOVED,
        "the address has moved",
        r"has (?:been )?moved",
        r"address (?:has )?changed",
        r"no longer (?:valid|in use|at)",
    ),
    _rule(
        r.NOT_ACCEPT,
        "the domain has no mail service",
        r"null mx",
        r"does not accept (?:any )?mail",
        r"accepts? no mail",
        r"not accept(?:ing)? (?:any )?mail",
        r"system not accepting",
        r"no mail (?:service|exchanger)",
        r"no mx (?:found|record)",
        r"couldn'?t find a mail exchanger",
        r"no smtp service",
    ),
    _rule(
        r.SUSPEND,
        "the account is disabled or suspended",
        r"account (?:has been |is )?(?:disabled|suspended|inactive|deactivated|blocked|locked"
        r"|frozen|expired)",
        r"(?:mailbox|user|recipient|address) (?:has been |is )?(?:disabled|suspended|inactive"
        r"|deactivated)",
        r"(?<!temporarily )\bsuspended\b",
        r"\bdisabled\b",
        r"is not active",
        r"temporarily (?:deactivated|disabled)",
        r"\blocked\b",
        r"extended inactivity",
        r"mailbox is frozen",
        r"\bis inactive\b",
        r"\b(?:account|mailbox|user|recipient)\b.{0,30}?\b(?:disabled|suspended|inactive|deactivated|locked|frozen)\b",
        r"\b(?:account|mailbox)\b.{0,12}\bblocked\b",
        r"(?:アカウント|アドレス|メールボックス).{0,10}(?:停止|休止|無効|凍結)",
    ),
    _rule(
        r.USER_UNKNOWN,
        "the mailbox does not exist",
        r"user ?unknown",
        r"unknown (?:user|recipient|local|mailbox|address)",
        r"no such (?:user|mailbox|recipient|account|address|person)",
        r"(?:user|mailbox|recipient|account|address|addressee)\b.{0,40}?(?:does ?n[o']t|did not)"
        r" exist",
        r"(?:user|mailbox|recipient|address|addressee) (?:is )?(?:not found|unknown|invalid"
        r"|not exist)",
        r"invalid (?:recipient|mailbox|address|user)",
        r"not (?:a )?(?:valid|known) (?:user|mailbox"
        r"|recipient)",
        r"unrouteable address",
        r"bad destination",
        r"mailbox unavailable",
        r"mailbox not available",
        r"no mailbox",
        r"unknown or illegal alias",
        r"doesn'?t have an? \S+ account",
        r"not our customer",
        r"recipient not found",
        r"name is not recognized",
        r"undeliverable address",
        r"address (?:is )?not (?:valid|found)",
        r"does not have an account",
        r"invalid final delivery userid",
        r"destinataire invalide",
        r"宛先.{0,10}(?:存在しません|不明)",
        r"存在しない",
        r"(?:ユーザー?|アカウント|アドレス|宛先|受信者).{0,10}(?:見つかりません|存在しません|ありません)",
    ),
    _rule(
        r.HOST_UNKNOWN,
        "the domain does not exist",
        r"host ?unknown",
        r"unknown (?:host|domain)",
        r"(?:host|domain) (?:name )?not found",
        r"domain (?:\S+ )?(?:does not|doesn'?t) exist",
        r"unrouteable mail domain",
        r"no such (?:host|domain)",
        r"name or service not known",
        r"nxdomain",
        r"couldn'?t find any host",
        r"non-existent (?:host|domain)",
        r"domain (?:is )?invalid",
        r"invalid domain",
        r"dns lookup fail",
        r"domain is not reachable",
        r"\b(?:host|domain)\b.{0,40}?\b(?:not found|(?:may |does )?not exist|doesn'?t exist)",
        r"\bdomain\b.{0,30}?\bnot reachable",
        r"\b(?:no such|unknown|non-?existent) (?:host|domain)\b",
    ),
    _rule(
        r.SECURITY_ERROR,
        "authentication or authorisation is required",
        r"authentication (?:is )?required",
        r"authentication (?:failed|failure|credentials)",
        r"auth(?:entication)? (?:mechanism|error)",
        r"must (?:be )?authenticat",
        r"smtp authentication",
        r"unauthenticated senders?",
        r"not authorized",
        r"unauthori[sz]ed",
        r"certificate",
        r"submission port",
        r"invalid credentials",
        r"password",
    ),
    _rule(
        r.NO_RELAYING,
        "relaying is refused",
        r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))",
        r"unable to relay",
        r"not (?:permitted|allowed) to relay",
        r"we do not relay",
        r"relay not",
        r"no relaying",
        r"open relay",
        r"\brelay(?:ing)?\b.{0,30}?\b(?:denied|not (?:permitted|allowed)|refused|prohibited)",
        r"\b(?:no|unable to|cannot|can ?not|not (?:permitted|allowed) to|do not|don'?t"
        r"|will not) relay",
    ),
    _rule(
        r.FAILED_STARTTLS,
        "TLS is required or failed",
        r"starttls",
        r"tls (?:is )?required",
        r"must (?:use|issue) (?:a )?(?:tls|starttls)",
        r"encryption required",
    ),
    _rule(
        r.SYNTAX_ERROR,
        "a command is refused as malformed",
        r"syntax error",
        r"command (?:not )?(?:unrecognized|recognized|not implemented)",
        r"unrecognized command",
        r"line too long",
        r"not implemented",
        r"bad sequence of commands",
        r"invalid command",
        r"malformed address",
        r"\bsyntax\b|\bmalformed\b|\bnot implemented\b|\bunrecogni[sz]ed\b",
        weak=True,
    ),
    _rule(
        r.POLICY_VIOLATION,
        "a local policy refuses the mail",
        r"polic(?:y|ies) (?:violation|reasons|rejection)",
        r"violat",
        r"local policy",
        r"by policy",
        r"prohibited",
        r"acceptable use",
        r"\bdlp\b",
        r"header error",
        r"\bpolic(?:y|ies)\b",
        weak=True,
    ),
    _rule(
        r.RATE_LIMITED,
        "a sending quota is exceeded",
        r"rate ?limit",
        r"too many (?:messages|mails|emails)",
        r"(?:sending|message) (?:rate|limit) exceeded",
        r"exceeded .{0,20}(?:rate|limit)",
        r"throttl",
        r"daily (?:sending )?(?:limit|quota)",
        r"temporarily (?:rate )?limited",
        r"sending limit",
    ),
    _rule(
        r.MAILER_ERROR,
        "a local delivery program failed",
        r"mailer error",
        r"command (?:died|failed|output)",
        r"exit (?:code|status)",
        r"x-unix",
        r"procmail",
        r"pipe to",
        r"program (?:error|failed)",
        r"local delivery failed",
        r"\b(?:pipe|program|command|mailer|procmail|maildrop|delivery agent)\b"
        r".{0,40}?\b(?:fail\w*|died|error|exit\w*|status \d+)",
        r"\bpipe to \|",
    ),
    _rule(
        r.REJECTED,
        "the sender is refused",
        r"sender (?:address )?(?:rejected|refused|denied|blocked|verify failed|unknown|domain)",
        r"(?:mail from|from address|envelope sender|sender) .{0,40}(?:rejected|refused|invalid"
        r"|denied)",
        r"domain of sender",
        r"sender verification",
        r"sender.{0,20}(?:not allowed|not permitted)",
        r"access denied",
        r"purported responsible address",
        r"send mail as",
        weak=True,
    ),
    _rule(
        r.BLOCKED,
        "the sender is refused as blocked",
        r"block(?:ed| ?list)",
        r"black ?list",
        r"deny ?list",
        r"listed (?:in|on|at)",
        r"spamhaus",
        r"spamcop",
        r"sorbs",
        r"barracuda",
        r"\bbanned\b",
        r"dynamic ip",
        r"(?:your|sending|the) ip",
        r"(?:connection|ip address|host) (?:\S+ )?(?:refused|rejected"
        r"|denied)",
        r"smtp server of your isp",
        r"not allowed to send",
        r"refused to talk",
        r"\bcblp?\b",
        r"\bip\b.{0,30}\brejected",
        weak=True,
    ),
    _rule(
        r.FILTERED,
        "the recipient's filter refuses the mail",
        r"filter",
        r"refuse[sd]? (?:to accept|mail|messages)",
        r"user refuses",
        r"recipient refuses",
        r"denied by (?:the )?recipient",
        r"recipient preferences",
        r"not (?:accept|receive) (?:mail|messages) from",
        r"restricted",
        r"rejected by (?:the )?recipient",
        r"受信拒否",
        r"拒否",
        weak=True,
    ),
    _rule(
        r.EXPIRED,
        "the queue gave up",
        r"(?:message|delivery|retry) (?:time ?out|timed out|expired|period expired)",
        r"queue too long",
        r"(?:in|on) the queue (?:too long|for)",
        r"could not be delivered (?:within|for)",
        r"not (?:been )?delivered (?:within|for|after)",
        r"retry time",
        r"giving up",
        r"given up",
        r"expired",
        r"maximum (?:time|age|retry)",
        r"connection timed out",
        r"timed? ?out",
        r"did not accept our requests to connect",
        r"will be retried",
        r"socket error",
        r"host not reachable",
        r"delivery failed \d+ attempts",
        r"\b(?:giv(?:ing|en)|gave) up\b",
        r"\bexpir",
        r"\bretr(?:y|ied|ies)\b",
        r"\bqueue\b.{0,40}(?:too long|\d+ (?:days?|hours?))",
        r"(?:failed|after|exceeded) \d+ (?:delivery )?attempts"
        r"|\d+ (?:delivery )?attempts? (?:failed|exceeded)",
        r"for the last \d+ (?:seconds|minutes|hours|days)",
        r"タイムアウト|時間切れ|期限切れ|配信期限",
        weak=True,
    ),
    _rule(
        r.NETWORK_ERROR,
        "the connection failed",
        r"connection (?:refused|reset|closed|lost|dropped)",
        r"could not connect",
        r"couldn'?t connect",
        r"unable to connect",
        r"cannot connect",
        r"no route to host",
        r"(?:host|network) (?:is )?unreachable",
        r"lost connection",
        r"temporary (?:dns|lookup) failure",
        r"broken pipe",
        r"network error",
        r"unexpected (?:eof|disconnect)",
        weak=True,
    ),
    _rule(
        r.SYSTEM_ERROR,
        "the server has temporary trouble",
        r"system error",
        r"server error",
        r"configuration error",
        r"local error",
        r"temporary (?:local )?(?:failure|problem|error)",
        r"try again later",
        r"i/o error",
        r"resources? (?:temporarily )?unavailable",
        r"too many (?:errors|failures)",
        r"service (?:currently )?(?:unavailable|not available)",
        r"duplicated message-id",
        r"\b(?:service|server|system)\b.{0,20}?\b(?:unavailable|not available|busy)",
        weak=True,
    ),
)

# "550-5.7.1 ..." continuation prefixes split sentences across lines; these are removed before
# matching so that a phrase broken over two reply lines is still found.
_CONTINUATION_RE: Final = re.compile(r"(?:\n\s*|\s)[245]\d\d[ -](?:#?[245]\.\d{1,3}\.\d{1,3}\s+)?")


# Wording that names a non-existent mailbox so plainly that it stands whatever SMTP command it
# answered (see ``diagnosis.decide_reason`` for why the command usually matters).
_CERTAIN_USER_UNKNOWN: Final = _rule(
    r.USER_UNKNOWN,
    "the mailbox does not exist, beyond doubt",
    r"recipient name is not recognized",
    r"did not reach the following recipient",
    r"invalid final delivery userid",
    r"invalid recipient",
    r"destinataire invalide",
    r"address rejected\.(?:\s|$)",
    r"recipient address rejected: access denied",
    r"recipient ?not ?found by smtp address lookup",
    r"recip(?:ient)?notfound",
    kind="certain",
)


def names_unknown_mailbox_plainly(text: str) -> bool:
    """True when the text says the mailbox does not exist in words no filter uses."""
    if is_tracing():
        return _CERTAIN_USER_UNKNOWN.decides(text[:20_000].lower())
    return _cached_certain(text)


@functools.lru_cache(maxsize=64)
def _cached_certain(text: str) -> bool:
    return _CERTAIN_USER_UNKNOWN.decides(text[:20_000].lower())


def phrase_reason(text: str) -> tuple[str, bool] | None:
    """Return the reason the wording points to and whether the wording is weak (broad)."""
    if not text:
        return None
    if is_tracing():
        return _phrase_reason(text)
    # A bounce's report section is read once per recipient and once per question asked of
    # it; remembering the last few answers keeps a bounce well under a millisecond.
    return _cached_phrase_reason(text)


def _phrase_reason(text: str) -> tuple[str, bool] | None:
    text = _CONTINUATION_RE.sub(" ", text[:20_000]).lower()
    for group in _RULES:
        if group.decides(text):
            return group.reason, group.weak
    return None


_cached_phrase_reason: Final = functools.lru_cache(maxsize=64)(_phrase_reason)


def reason_from_text(text: str) -> str | None:
    """Return the reason the wording of a reply or bounce points to, or None if it says nothing."""
    found = phrase_reason(text)
    return found[0] if found else None
